"""One window of video in, Geo4D's four decoded modalities out: VAE encode, DDIM with the UNet, VAE decode.

The loop is written out here (diffusers style): the sampler only knows timesteps and updates, the models
only their forward passes. Inference holds the UNet, the main VAE, the point-map VAE and the constant
cross-attention context; the CLIP towers are never in memory here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from .errors import Geo4DError
from .model.checkpoint import INFERENCE_PARTS, build_part, load_published
from .model.clip import constant_context
from .model.config import NetworkConfig
from .model.network_file import load_network_file
from .model.unet import UNet3D
from .model.vae import Geo4DVAE, uncertainty_weight
from .prediction import WindowPrediction
from .progress import Reporter
from .sampler import Geo4DSampler, SamplerConfig

logger = logging.getLogger(__name__)

HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CONTEXT_PARTS = ("text", "visual", "resampler")
MODALITY_CHANNELS = (
    4  # latent channels per modality: [0:4] point map, [4:8] ray dir, [8:12] moment, [12:16] disp.
)


@dataclass(frozen=True)
class PredictionConfig:
    """How a window is predicted.

    sampler: DDIM settings (None = the network's own `sampling_steps` and the default rescale).
    decode_batch_size: frames per VAE encode/decode call (lower it to save memory). sample_posterior:
    c_concat from a posterior sample of each frame's VAE latent, as the released model does; False uses
    the posterior mean. seed: default noise seed.
    """

    sampler: SamplerConfig | None = None
    decode_batch_size: int = 8
    sample_posterior: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.decode_batch_size <= 256:
            raise ValueError(
                f"PredictionConfig.decode_batch_size = {self.decode_batch_size}; allowed 1..256."
            )
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"PredictionConfig.seed = {self.seed}; allowed 0..2**63-1.")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str, half: str = "bf16") -> torch.dtype:
    """bf16 (or fp16 with half="fp16") on CUDA, float32 elsewhere."""
    if half not in HALF_DTYPES:
        raise ValueError(f"half precision {half!r}: must be one of {sorted(HALF_DTYPES)}")
    return HALF_DTYPES[half] if torch.device(device).type == "cuda" else torch.float32


@dataclass
class DecodedWindow:
    """Decoded maps of L frames, float32 [L, H, W, ...]: point map xyz and its raw uncertainty [L, H, W],
    ray direction, ray moment, and disparity (mean of its 3 decoded channels)."""

    point_map: torch.Tensor
    point_uncertainty: torch.Tensor
    ray_direction: torch.Tensor
    ray_moment: torch.Tensor
    disparity: torch.Tensor

    def to_prediction(self, frame_indices: np.ndarray | torch.Tensor) -> WindowPrediction:
        """The aligner's input for these maps; frame_indices [L]: the frames' indices in the clip."""
        return WindowPrediction(
            frames=torch.as_tensor(frame_indices).to(torch.int64),
            point_map=self.point_map,
            point_confidence=uncertainty_weight(self.point_uncertainty),
            disparity=self.disparity,
            ray_direction=self.ray_direction,
            ray_moment=self.ray_moment,
        )


class Geo4D:
    """The Geo4D window predictor: UNet, main VAE, point-map VAE, constant context and the sampler."""

    def __init__(
        self,
        config: NetworkConfig,
        unet: UNet3D,
        vae: Geo4DVAE,
        pointmap_vae: Geo4DVAE,
        context: torch.Tensor,
        options: PredictionConfig | None = None,
    ) -> None:
        self.config = config
        self.unet, self.vae, self.pointmap_vae = unet, vae, pointmap_vae
        self.options = options or PredictionConfig()
        self.sampler = Geo4DSampler(self.options.sampler or SamplerConfig(steps=config.sampling_steps))
        parameter = next(unet.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.context = context.to(self.device, self.dtype)  # [1, 77 + 16 L, context_dim]
        self.source: str | None = None  # the model setting it was loaded from (core.models.load_model)

    @classmethod
    def from_checkpoint(
        cls,
        model_path: str | os.PathLike,
        vae_path: str | os.PathLike | None = None,
        *,
        config: NetworkConfig | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        options: PredictionConfig | None = None,
    ) -> Geo4D:
        """Load our `.safetensors` (vae_path unused) or the published model.ckpt + vae.ckpt.

        From the published files the constant context is computed once on the CPU in float32 from the
        CLIP towers, which are then dropped. config: the network of the published files (full by
        default; our file carries its own). Weights go straight to `device` in `dtype` (defaults: CUDA
        when available, bf16 there, float32 on the CPU).
        """
        device = torch.device(device) if device is not None else default_device()
        dtype = dtype or default_dtype(device)
        if Path(model_path).suffix == ".safetensors":
            config, modules, context = load_network_file(model_path, device, dtype)
        else:
            config = config or NetworkConfig.full()
            context = published_context(model_path, config)
            modules = load_published(model_path, vae_path, config, INFERENCE_PARTS, device, dtype)
        return cls(config, modules["unet"], modules["vae"], modules["pointmap_vae"], context, options)

    @classmethod
    def from_config(
        cls,
        config: NetworkConfig,
        seed: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        options: PredictionConfig | None = None,
    ) -> Geo4D:
        """Randomly initialised network (torch's default init under `seed`), for tests and benchmarks.

        The context is random N(0, 1) of the right shape instead of CLIP features of random towers.
        """
        torch.manual_seed(seed)
        with torch.device(device):
            modules = {
                part: build_part(part, config).to(dtype).requires_grad_(False).eval()
                for part in INFERENCE_PARTS
            }
        unet_config = config.unet
        tokens = unet_config.text_tokens + unet_config.image_tokens_per_frame * unet_config.temporal_length
        context = torch.randn(1, tokens, unet_config.context_dim)
        return cls(config, modules["unet"], modules["vae"], modules["pointmap_vae"], context, options)

    def predict_window(
        self,
        frames: np.ndarray | torch.Tensor,
        fps: float,
        frame_indices: np.ndarray | torch.Tensor | None = None,
        seed: int | None = None,
        reporter: Reporter | None = None,
    ) -> WindowPrediction:
        """Predict one window. frames: [L, H, W, 3] uint8 RGB (L = temporal_length, H and W multiples
        of the network's stride); fps: the video's frame rate (rounded for the fps embedding);
        frame_indices: [L] indices in the clip (default 0..L-1); seed: noise seed (default options.seed).
        Noise, drawn on the CPU so a seed means the same run on any device: one generator seeded with
        `seed` draws x_T [1, 16, L, h, w] first, then (when sampling the posterior) [L, 4, h, w].
        """
        images = self._frames_to_images(frames)
        length = images.shape[0]
        seed = self.options.seed if seed is None else seed
        generator = torch.Generator("cpu").manual_seed(seed)
        latent_shape = (1, self.config.unet.out_channels, length, *self._latent_size(images))
        initial_noise = torch.randn(latent_shape, generator=generator)
        posterior_noise = None
        if self.options.sample_posterior:
            posterior_noise = torch.randn(
                (length, self.config.vae.latent_channels, *latent_shape[3:]), generator=generator
            )
        with torch.inference_mode():
            c_concat = self.encode_frames(images, posterior_noise)
            latents = self.denoise(c_concat, fps, initial_noise, reporter)
            decoded = self.decode_latents(latents)
        return decoded.to_prediction(torch.arange(length) if frame_indices is None else frame_indices)

    def _latent_size(self, images: torch.Tensor) -> tuple[int, int]:
        down = self.config.vae.downsampling
        return images.shape[-2] // down, images.shape[-1] // down

    def _frames_to_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[L, H, W, 3] uint8 -> [L, 3, H, W] float32 in [-1, 1] on the device; Geo4DError on bad input."""
        frames = torch.as_tensor(frames)
        length = self.config.unet.temporal_length
        stride = self.config.vae.downsampling * 2 ** (len(self.config.unet.channel_mult) - 1)
        if (
            frames.dtype != torch.uint8
            or frames.ndim != 4
            or frames.shape[0] != length
            or frames.shape[3] != 3
        ):
            raise Geo4DError(
                f"A window must be {length} RGB frames as uint8 [{length}, H, W, 3]; got {frames.dtype} "
                f"{list(frames.shape)}. Resize and convert the video frames first."
            )
        height, width = frames.shape[1:3]
        if height % stride or width % stride:
            raise Geo4DError(
                f"Frame size {width}x{height} is not a multiple of {stride} pixels; resize the video to a "
                "supported size such as 512x320."
            )
        images = rearrange(frames.to(self.device), "l h w c -> l c h w").float()
        return images / 127.5 - 1.0

    def encode_frames(self, images: torch.Tensor, posterior_noise: torch.Tensor | None) -> torch.Tensor:
        """Every frame's own scaled VAE latent, the UNet's c_concat: [L, 3, H, W] -> [1, 4, L, H/8, W/8].

        posterior_noise [L, 4, H/8, W/8] draws z = mean + std * noise (the released model's posterior
        sample); None uses the posterior mean. Computed in float32 from the VAE's dtype.
        """
        mean, std = self.encode_moments(images)
        return self.sample_latents(mean, std, posterior_noise)

    def encode_moments(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE posterior of each frame: [N, 3, H, W] in [-1, 1] -> (mean, std), float32
        [N, 4, H/8, W/8] each, in calls of options.decode_batch_size frames."""
        means, stds = [], []
        for start in range(0, images.shape[0], self.options.decode_batch_size):
            posterior = self.vae.encode(images[start : start + self.options.decode_batch_size].to(self.dtype))
            means.append(posterior.mean.float())
            stds.append(posterior.std.float())
        return torch.cat(means), torch.cat(stds)

    def sample_latents(
        self, mean: torch.Tensor, std: torch.Tensor, posterior_noise: torch.Tensor | None
    ) -> torch.Tensor:
        """c_concat [1, 4, L, h, w] from posterior moments [L, 4, h, w]: scale_factor x (mean + std x
        posterior_noise [L, 4, h, w], any device), or scale_factor x mean when posterior_noise is None."""
        z = mean if posterior_noise is None else mean + std * posterior_noise.to(self.device)
        return rearrange(z * self.config.vae.scale_factor, "l c h w -> 1 c l h w")

    def denoise(
        self,
        c_concat: torch.Tensor,
        fps: float,
        initial_noise: torch.Tensor,
        reporter: Reporter | None = None,
    ) -> torch.Tensor:
        """DDIM from initial_noise [1, 16, L, h, w] given c_concat [1, 4, L, h, w]; returns the clean
        modality latents [1, 16, L, h, w] float32. The UNet runs in the model dtype, the update in float32.
        """
        x = initial_noise.to(self.device, torch.float32)
        fps_tensor = torch.tensor([round(fps)], device=self.device)
        steps = self.sampler.timesteps
        for index, t in enumerate(steps):
            unet_input = torch.cat([x, c_concat.to(torch.float32)], dim=1).to(self.dtype)
            timestep = torch.tensor([t], device=self.device)
            velocity = self.unet(unet_input, timestep, self.context, fps_tensor).float()
            x = self.sampler.step(velocity, index, x)
            if reporter is not None:
                reporter.report("denoise", index + 1, len(steps))
        return x

    def decode_latents(self, latents: torch.Tensor) -> DecodedWindow:
        """[1, 16, L, h, w] modality latents -> DecodedWindow of [L, 8h, 8w, ...] float32 maps.

        The point map goes through the point-map VAE with its uncertainty head, the other three through
        the main VAE, in batches of options.decode_batch_size frames.
        """
        z = rearrange(
            latents / self.config.vae.scale_factor, "1 (m c) l h w -> m l c h w", c=MODALITY_CHANNELS
        )
        point_map, uncertainty = self._decode_batches(self.pointmap_vae, z[0], uncertainty=True)
        length = z.shape[1]
        others = self._decode_batches(self.vae, rearrange(z[1:], "m l c h w -> (m l) c h w"))[0]
        direction, moment, disparity = others.split(length)
        return DecodedWindow(
            point_map=rearrange(point_map, "l c h w -> l h w c"),
            point_uncertainty=uncertainty[:, 0],
            ray_direction=rearrange(direction, "l c h w -> l h w c"),
            ray_moment=rearrange(moment, "l c h w -> l h w c"),
            disparity=disparity.mean(dim=1),
        )

    def _decode_batches(
        self, vae: Geo4DVAE, latents: torch.Tensor, uncertainty: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[N, 4, h, w] raw latents -> ([N, 3, H, W] float32, [N, 1, H, W] float32 or None)."""
        decoded, raw = [], []
        for batch in latents.split(self.options.decode_batch_size):
            batch = batch.to(self.dtype)
            if uncertainty:
                xyz, sigma = vae.decode_with_uncertainty(batch)
                raw.append(sigma.float())
            else:
                xyz = vae.decode(batch)
            decoded.append(xyz.float())
        return torch.cat(decoded), (torch.cat(raw) if uncertainty else None)


def published_context(model_path: str | os.PathLike, config: NetworkConfig) -> torch.Tensor:
    """The constant context [1, 77 + 16 L, context_dim] float32 computed on the CPU from model.ckpt's
    text tower, image embedder and resampler (memory-mapped weights; dropped afterwards)."""
    towers = load_published(model_path, None, config, CONTEXT_PARTS, "cpu", torch.float32)
    return constant_context(towers["text"], towers["visual"], towers["resampler"])

"""Windows of video in, Geo4D's four decoded modalities out: VAE encode, DDIM with the UNet, VAE decode.

The loop is written out here (diffusers style): the sampler only knows timesteps and updates, the models
only their forward passes. One implementation runs a batch of windows (their UNet passes batched together);
predict_window is its batch of one. Inference holds the UNet, the main VAE, the point-map VAE and the
constant cross-attention context; the CLIP towers are never in memory here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from einops import rearrange

from ..errors import Geo4DError
from ..limits import MAX_SEED, check_integer
from ..prediction import WindowPrediction
from ..progress import Reporter
from ..settings import MAX_STEPS
from .config import NetworkConfig
from .sampler import Geo4DSampler, SamplerConfig
from .unet import UNet3D
from .vae import Geo4DVAE, uncertainty_weight

if TYPE_CHECKING:
    from .frame_posteriors import FramePosteriors

logger = logging.getLogger(__name__)

# Latent channels per modality: [0:4] point map, [4:8] ray dir, [8:12] moment, [12:16] disparity.
MODALITY_CHANNELS = 4
# The most frames one VAE call may take (ReconstructionSettings.decode_batch's range).
MAX_DECODE_BATCH = 256


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


class WindowPipeline:
    """Geo4D's window predictor: UNet, main VAE, point-map VAE and the constant context (core.network.loading
    builds one from weights). The run's choices (noise seeds, DDIM steps, frames per VAE call) are arguments
    of every call, so that their defaults live in one place: the reconstruction settings."""

    def __init__(
        self,
        config: NetworkConfig,
        unet: UNet3D,
        vae: Geo4DVAE,
        pointmap_vae: Geo4DVAE,
        context: torch.Tensor,
    ) -> None:
        self.config = config
        self.unet, self.vae, self.pointmap_vae = unet, vae, pointmap_vae
        parameter = next(unet.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.context = context.to(self.device, self.dtype)  # [1, 77 + 16 L, context_dim]
        self.source: str | None = (
            None  # the model setting it was loaded from (core.network.loading.load_model)
        )
        self._samplers: dict[int, Geo4DSampler] = {}

    def sampler(self, steps: int) -> Geo4DSampler:
        """The DDIM sampler of `steps` steps (0 = the network's own sampling_steps)."""
        steps = steps or self.config.sampling_steps
        if steps not in self._samplers:
            self._samplers[steps] = Geo4DSampler(SamplerConfig(steps=steps))
        return self._samplers[steps]

    def predict_window(
        self,
        frames: np.ndarray | torch.Tensor,
        fps: float,
        frame_indices: np.ndarray | torch.Tensor | None,
        seed: int,
        *,
        steps: int,
        decode_batch: int,
        reporter: Reporter | None = None,
    ) -> WindowPrediction:
        """One window: predict_windows with a batch of one. frames [L, H, W, 3] uint8; frame_indices [L]
        (None: 0..L-1)."""
        indices = torch.arange(len(frames)) if frame_indices is None else torch.as_tensor(frame_indices)
        batch = torch.as_tensor(frames)[None]
        return self.predict_windows(
            batch, fps, indices[None], [seed], steps=steps, decode_batch=decode_batch, reporter=reporter
        )[0]

    def predict_windows(
        self,
        frames: np.ndarray | torch.Tensor,
        fps: float,
        frame_indices: np.ndarray | torch.Tensor,
        seeds: Sequence[int],
        *,
        steps: int,
        decode_batch: int,
        reporter: Reporter | None = None,
        posteriors: FramePosteriors | None = None,
    ) -> list[WindowPrediction]:
        """Predict B windows, their UNet passes batched together.

        frames: [B, L, H, W, 3] uint8 RGB (L = temporal_length, H and W multiples of the network's stride);
        fps: the video's frame rate (rounded for the fps embedding); frame_indices: [B, L] the frames' indices
        in the clip; seeds: B noise seeds; steps: DDIM steps (0 = the network's own); decode_batch: frames per
        VAE call. Each window's noise is drawn on the CPU from its own generator seeded with its seed (x_T
        [1, 16, L, h, w] first, then the posterior sample [L, 4, h, w]), so a seed means the same run on any
        device and in any batch. `reporter` sees each DDIM step ("denoise") and may cancel between every VAE
        call and every step. posteriors: the clip's frames' VAE posteriors (FramePosteriors, indexed by
        frame_indices), each frame encoded once for all the windows that hold it; None encodes each window's
        frames. Either way each window samples its latents with its own posterior noise: the same result.
        """
        check_integer(type(self).__name__, "decode_batch", decode_batch, 1, MAX_DECODE_BATCH)
        check_integer(type(self).__name__, "steps", steps, 0, MAX_STEPS)
        for seed in seeds:
            check_integer(type(self).__name__, "seed", seed, 0, MAX_SEED)
        reporter = reporter or Reporter()
        images = self._frames_to_images(frames)  # [B, L, 3, H, W]
        if len(seeds) != images.shape[0] or len(frame_indices) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} windows need as many seeds and frame index rows.")
        length = images.shape[1]
        down = self.config.vae.downsampling
        latent_size = (images.shape[-2] // down, images.shape[-1] // down)
        initial, c_concat = [], []
        with torch.inference_mode():
            for seed, window_images, indices in zip(seeds, images, frame_indices, strict=True):
                generator = torch.Generator("cpu").manual_seed(seed)
                latent_shape = (1, self.config.unet.out_channels, length, *latent_size)
                initial.append(torch.randn(latent_shape, generator=generator))
                posterior_shape = (length, self.config.vae.latent_channels, *latent_size)
                posterior = torch.randn(posterior_shape, generator=generator)
                if posteriors is None:
                    c_concat.append(self._encode_window(window_images, posterior, decode_batch, reporter))
                else:
                    c_concat.append(self.sample_latents(*posteriors.moments(indices, reporter), posterior))
            latents = self.denoise(
                torch.cat(c_concat), fps, torch.cat(initial), self.sampler(steps), reporter
            )
            return [
                self._decode_window(latents[i : i + 1], indices, decode_batch, reporter)
                for i, indices in enumerate(frame_indices)
            ]

    def _frames_to_images(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[B, L, H, W, 3] uint8 -> [B, L, 3, H, W] float32 in [-1, 1] on the device; Geo4DError on bad input."""
        frames = torch.as_tensor(frames)
        length = self.config.unet.temporal_length
        stride = self.config.vae.downsampling * 2 ** (len(self.config.unet.channel_mult) - 1)
        if (
            frames.dtype != torch.uint8
            or frames.ndim != 5
            or frames.shape[1] != length
            or frames.shape[4] != 3
        ):
            raise Geo4DError(
                f"A window must be {length} RGB frames as uint8 [{length}, H, W, 3]; got {frames.dtype} "
                f"{list(frames.shape[1:])}. Resize and convert the video frames first."
            )
        height, width = frames.shape[2:4]
        if height % stride or width % stride:
            raise Geo4DError(
                f"Frame size {width}x{height} is not a multiple of {stride} pixels; resize the video to a "
                "supported size such as 512x320."
            )
        images = rearrange(frames.to(self.device), "b l h w c -> b l c h w").float()
        return images / 127.5 - 1.0

    def _decode_window(
        self, latents: torch.Tensor, frame_indices, decode_batch: int, reporter: Reporter
    ) -> WindowPrediction:
        """One window's [1, 16, L, h, w] latents decoded a few frames at a time (decode_batch VAE frames per
        chunk over the four modalities), checking the cancel flag between chunks."""
        chunk = max(1, decode_batch // 4)
        pieces = []
        for first in range(0, latents.shape[2], chunk):
            reporter.check_cancel()
            pieces.append(self.decode_latents(latents[:, :, first : first + chunk], decode_batch))
        joined = {
            field.name: torch.cat([getattr(piece, field.name) for piece in pieces])
            for field in fields(DecodedWindow)
        }
        return DecodedWindow(**joined).to_prediction(frame_indices)

    def _encode_window(
        self, images: torch.Tensor, posterior_noise: torch.Tensor, decode_batch: int, reporter: Reporter
    ) -> torch.Tensor:
        """One window's c_concat [1, 4, L, h, w] from its images [L, 3, H, W], decode_batch frames per VAE
        call, checking the cancel flag before each."""
        parts = []
        for first in range(0, images.shape[0], decode_batch):
            reporter.check_cancel()
            chunk = slice(first, first + decode_batch)
            parts.append(self.encode_frames(images[chunk], posterior_noise[chunk], decode_batch))
        return torch.cat(parts, dim=2)

    def encode_frames(
        self, images: torch.Tensor, posterior_noise: torch.Tensor | None, decode_batch: int
    ) -> torch.Tensor:
        """Every frame's own scaled VAE latent, the UNet's c_concat: [L, 3, H, W] -> [1, 4, L, H/8, W/8].

        posterior_noise [L, 4, H/8, W/8] draws z = mean + std * noise (the released model's posterior
        sample); None uses the posterior mean. Computed in float32 from the VAE's dtype, decode_batch frames
        per VAE call.
        """
        return self.sample_latents(*self.encode_moments(images, decode_batch), posterior_noise)

    def encode_moments(self, images: torch.Tensor, decode_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each frame's VAE posterior: [N, 3, H, W] in [-1, 1] -> (mean, std), float32 [N, 4, H/8, W/8]
        each, decode_batch frames per VAE call."""
        means, stds = [], []
        for start in range(0, images.shape[0], decode_batch):
            posterior = self.vae.encode(images[start : start + decode_batch].to(self.dtype))
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
        sampler: Geo4DSampler,
        reporter: Reporter | None = None,
    ) -> torch.Tensor:
        """DDIM from initial_noise [B, 16, L, h, w] given c_concat [B, 4, L, h, w]; returns the clean
        modality latents [B, 16, L, h, w] float32. The UNet runs in the model dtype, the update in float32;
        the timestep, context and fps ([1]) are shared by the batch.
        """
        x = initial_noise.to(self.device, torch.float32)
        batch = x.shape[0]
        fps_tensor = torch.tensor([round(fps)], device=self.device).expand(batch)
        context = self.context.expand(batch, -1, -1)
        steps = sampler.timesteps
        for index, t in enumerate(steps):
            unet_input = torch.cat([x, c_concat.to(torch.float32)], dim=1).to(self.dtype)
            timestep = torch.tensor([t], device=self.device).expand(batch)
            velocity = self.unet(unet_input, timestep, context, fps_tensor).float()
            x = sampler.step(velocity, index, x)
            if reporter is not None:
                reporter.report("denoise", index + 1, len(steps))
        return x

    def decode_latents(self, latents: torch.Tensor, decode_batch: int) -> DecodedWindow:
        """[1, 16, L, h, w] modality latents -> DecodedWindow of [L, 8h, 8w, ...] float32 maps.

        The point map goes through the point-map VAE with its uncertainty head, the other three through
        the main VAE, in batches of decode_batch frames.
        """
        z = rearrange(
            latents / self.config.vae.scale_factor, "1 (m c) l h w -> m l c h w", c=MODALITY_CHANNELS
        )
        point_map, uncertainty = self._decode_batches(self.pointmap_vae, z[0], decode_batch, uncertainty=True)
        length = z.shape[1]
        others = self._decode_batches(self.vae, rearrange(z[1:], "m l c h w -> (m l) c h w"), decode_batch)[0]
        direction, moment, disparity = others.split(length)
        return DecodedWindow(
            point_map=rearrange(point_map, "l c h w -> l h w c"),
            point_uncertainty=uncertainty[:, 0],
            ray_direction=rearrange(direction, "l c h w -> l h w c"),
            ray_moment=rearrange(moment, "l c h w -> l h w c"),
            disparity=disparity.mean(dim=1),
        )

    def _decode_batches(
        self, vae: Geo4DVAE, latents: torch.Tensor, decode_batch: int, uncertainty: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[N, 4, h, w] raw latents -> ([N, 3, H, W] float32, [N, 1, H, W] float32 or None)."""
        decoded, raw = [], []
        for batch in latents.split(decode_batch):
            batch = batch.to(self.dtype)
            if uncertainty:
                xyz, sigma = vae.decode_with_uncertainty(batch)
                raw.append(sigma.float())
            else:
                xyz = vae.decode(batch)
            decoded.append(xyz.float())
        return torch.cat(decoded), (torch.cat(raw) if uncertainty else None)

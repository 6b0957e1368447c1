"""The UNet's training: every window's latents encoded once, then v-prediction on the 16 modality latent
channels given each frame's RGB latent (c_concat), on the sampler's zero-terminal-SNR schedule."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..network.sampler import Geo4DSampler, SamplerConfig, make_scheduler
from ..network.unet import UNet3D
from ..network.vae import Geo4DVAE
from ..progress import Reporter
from .autoencoder import window_targets
from .config import TrainConfig
from .data import WINDOW, SceneSet, rgb_images, window_starts
from .optim import LossLog, make_optimizer, mixed_precision, optimisation_step

logger = logging.getLogger(__name__)

VIDEO_FPS = (
    24  # the synthetic scenes' frame rate; other rates are drawn too so the fps input is not relied on
)
FPS_RANGE = (10, 60)
ENCODE_BATCH = 64


@dataclass
class LatentSet:
    """Encoded training windows. rgb_mean, rgb_std: [S, 2 (plain, flipped), F, 4, h, w] float32 posterior of
    every frame (unscaled); targets: [N, 16, L, h, w] scaled posterior means of the modality maps in the
    UNet's channel order; windows: [N, 3] int64 (scene, first frame, flipped)."""

    rgb_mean: torch.Tensor
    rgb_std: torch.Tensor
    targets: torch.Tensor
    windows: torch.Tensor


@torch.no_grad()
def encode_windows(
    vae: Geo4DVAE,
    scenes: SceneSet,
    config: TrainConfig,
    device: torch.device,
    reporter: Reporter | None = None,
) -> LatentSet:
    """Encode every frame (plain and mirrored) and the modality maps of every window (every other one
    mirrored) once with the trained VAE."""
    scale = vae.config.scale_factor
    count, frames = scenes.rgb.shape[:2]
    rgb_mean, rgb_std = [], []
    for scene in range(count):
        for flip in (False, True):
            with mixed_precision(device):
                posterior = vae.encode(rgb_images(scenes.rgb[scene], flip).to(device))
            rgb_mean.append(posterior.mean.float().cpu())
            rgb_std.append(posterior.std.float().cpu())
    windows = [
        (scene, start, (scene + index) % 2)  # every other window mirrored
        for scene in range(count)
        for index, start in enumerate(window_starts(frames, config.window_step))
    ]
    targets = []
    for index, window in enumerate(windows):
        maps = window_targets(scenes, *window).flatten(0, 1).to(device)  # [(4 L), 3, H, W]
        with mixed_precision(device):
            means = torch.cat([vae.encode(batch).mean.float() for batch in maps.split(ENCODE_BATCH)])
        targets.append(rearrange(means * scale, "(m l) c h w -> (m c) l h w", m=4).cpu())
        if reporter is not None:
            reporter.report("encode", index + 1, len(windows))
    latent_shape = rgb_mean[0].shape
    return LatentSet(
        torch.stack(rgb_mean).reshape(count, 2, *latent_shape),
        torch.stack(rgb_std).reshape(count, 2, *latent_shape),
        torch.stack(targets),
        torch.tensor(windows, dtype=torch.int64),
    )


def c_concat(
    latents: LatentSet, window: torch.Tensor, scale: float, generator: torch.Generator
) -> torch.Tensor:
    """The UNet's conditioning for one window: [4, L, h, w] scaled posterior sample of each frame's latent."""
    scene, start, flip = window.tolist()
    mean = latents.rgb_mean[scene, flip, start : start + WINDOW]
    std = latents.rgb_std[scene, flip, start : start + WINDOW]
    sample = mean + std * torch.randn(mean.shape, generator=generator)
    return rearrange(sample * scale, "l c h w -> c l h w")


class TimestepSampler:
    """Training timesteps: a share drawn from the DDIM timesteps the pipeline samples at, the rest uniform."""

    def __init__(self, inference_share: float, steps: int = SamplerConfig().steps) -> None:
        self.inference_share = inference_share
        sampler = Geo4DSampler(SamplerConfig(steps=steps))
        self.inference = torch.tensor(sampler.timesteps)
        self.alphas_cumprod = make_scheduler(steps).alphas_cumprod.float()  # [1000], 0 at t = 999 (zero SNR)
        self.rescale = sampler.scale_arr[: len(self.alphas_cumprod)]  # [1000] dynamic-rescale factor per t

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        uniform = torch.randint(0, len(self.alphas_cumprod), (count,), generator=generator)
        chosen = self.inference[torch.randint(0, len(self.inference), (count,), generator=generator)]
        pick = torch.rand(count, generator=generator) < self.inference_share
        return torch.where(pick, chosen, uniform)


def noisy_and_velocity(
    x0: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = sqrt(a) x0 + sqrt(1 - a) eps and the v-target sqrt(a) eps - sqrt(1 - a) x0; a [B] broadcast on [B, ...]."""
    a = alphas_cumprod.view(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise, a.sqrt() * noise - (1 - a).sqrt() * x0


def velocity_errors(prediction: torch.Tensor, target: torch.Tensor, temporal_weight: float) -> torch.Tensor:
    """[B] v-prediction loss of [B, C, L, h, w] latents: the MSE, plus temporal_weight x the MSE of the
    frame-to-frame change: camera motion is a small part of a window's latents, and the change between
    frames is where it shows."""
    residual = prediction - target
    errors = residual.square().mean(dim=(1, 2, 3, 4))
    if temporal_weight:
        change = residual[:, :, 1:] - residual[:, :, :-1]
        errors = errors + temporal_weight * change.square().mean(dim=(1, 2, 3, 4))
    return errors


def train_unet(
    unet: UNet3D,
    context: torch.nn.Parameter,
    latents: LatentSet,
    config: TrainConfig,
    scale: float,
    sampling_steps: int,
    device: torch.device,
    reporter: Reporter | None = None,
    log_path: Path | None = None,
) -> list[dict[str, float]]:
    """Train the UNet and the constant context [1, 77 + 16 L, context_dim] in place by v-prediction MSE,
    ending with their moving average when config.unet_ema is set.

    sampling_steps: the DDIM steps the network will sample with (NetworkConfig.sampling_steps); their
    timesteps get config.inference_timestep_share of the draws. Returns the logged loss history ("v_mse":
    the loss of velocity_errors, with its temporal term; "v_mse_high_t": that of the draws at t >= 500).
    """
    generator = torch.Generator().manual_seed(config.seed + 4)
    timesteps = TimestepSampler(config.inference_timestep_share, sampling_steps)
    unet.train().requires_grad_(True)
    context.requires_grad_(True)
    optimizer, schedule = make_optimizer(
        [*unet.parameters(), context], config.unet_lr, config.unet_steps, config.warmup_steps
    )
    trained = torch.nn.ParameterList([*unet.parameters(), context])
    average = (
        AveragedModel(trained, multi_avg_fn=get_ema_multi_avg_fn(config.unet_ema))
        if config.unet_ema
        else None
    )
    log = LossLog("unet", log_path, config.log_every)
    count = len(latents.windows)
    for step in range(config.unet_steps):
        chosen = torch.randint(0, count, (config.unet_batch,), generator=generator)
        x0 = latents.targets[chosen]
        condition = torch.stack([c_concat(latents, latents.windows[i], scale, generator) for i in chosen])
        t = timesteps.sample(config.unet_batch, generator)
        if config.training_rescale:
            x0 = x0 * timesteps.rescale[t].view(-1, 1, 1, 1, 1)
        noise = torch.randn(x0.shape, generator=generator)
        x_t, velocity = noisy_and_velocity(x0, noise, timesteps.alphas_cumprod[t])
        fps = torch.randint(*FPS_RANGE, (config.unet_batch,), generator=generator)
        fps = torch.where(torch.rand(config.unet_batch, generator=generator) < 0.5, VIDEO_FPS, fps)
        prediction = unet(
            torch.cat([x_t, condition], dim=1).to(device),
            t.to(device),
            context.expand(config.unet_batch, -1, -1),
            fps.to(device),
        )
        errors = velocity_errors(prediction, velocity.to(device), config.unet_temporal_weight)
        loss = errors.mean()
        optimisation_step(loss, optimizer, schedule)
        if average is not None:
            average.update_parameters(trained)
        high = t >= 500
        values = {"v_mse": loss.item()}
        if high.any():
            values["v_mse_high_t"] = errors[high.to(device)].mean().item()
        log.add(step, config.unet_steps, **values)
        if reporter is not None:
            reporter.report("unet", step + 1, config.unet_steps)
    if average is not None:
        with torch.no_grad():
            for parameter, averaged in zip(trained, average.module, strict=True):
                parameter.copy_(averaged)
    unet.eval().requires_grad_(False)
    context.requires_grad_(False)
    return log.history

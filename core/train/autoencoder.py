"""The tiny model's own VAE: trained on RGB frames and modality maps, latents standardised, point-map decoder
fine-tuned with its uncertainty head by a Laplacian likelihood."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..network.vae import Geo4DVAE
from ..progress import Reporter
from .config import TrainConfig
from .data import WINDOW, SceneSet, flip_targets, modality_targets, rgb_images, window_starts
from .optim import LossLog, make_optimizer, mixed_precision, optimisation_step

logger = logging.getLogger(__name__)

# How often each modality is drawn for VAE training (point map, ray direction, ray moment, disparity)
# and the L1 weight of each kind of image: moments span about a tenth of the others' range.
MODALITY_SHARES = np.array([0.3, 0.2, 0.2, 0.3])
MODALITY_WEIGHTS = torch.tensor([1.0, 1.0, 4.0, 1.0])
RGB_WEIGHT = 1.0
RGB_SHARE = 0.25
STANDARDISE_WINDOWS = 4
MIN_LAPLACE_SCALE = 1e-3

# (scene, first frame, flipped) -> raw point-map latents [L, 4, h, w] to decode (the UNet's samples).
LatentSource = Callable[[int, int, bool], torch.Tensor]


def random_window(scenes: SceneSet, step: int, rng: np.random.Generator) -> tuple[int, int, bool]:
    """(scene, first frame, flipped) of a random training window."""
    scene = int(rng.integers(len(scenes.seeds)))
    start = int(rng.choice(window_starts(scenes.rgb.shape[1], step)))
    return scene, start, bool(rng.integers(2))


def window_targets(scenes: SceneSet, scene: int, start: int, flip: bool) -> torch.Tensor:
    """Encoded modality maps [4, L, 3, H, W] of one training window, mirrored when `flip`."""
    frames = slice(start, start + WINDOW)
    targets = modality_targets(
        scenes.depth[scene, frames], scenes.camera_to_world[scene, frames], float(scenes.focal[scene])
    )
    return flip_targets(targets) if flip else targets


def vae_batch(
    scenes: SceneSet, config: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [B, 3, h, w] float32, L1 weights [B]): RGB frames and modality maps of one random window,
    all cropped to one random config.vae_crop square (whole images when 0 or larger)."""
    scene, start, flip = random_window(scenes, config.window_step, rng)
    rgb_count = max(1, round(RGB_SHARE * config.vae_batch))
    frames = rng.integers(start, start + WINDOW, size=rgb_count)
    rgb = rgb_images(scenes.rgb[scene, frames], flip)
    maps = window_targets(scenes, scene, start, flip)
    count = config.vae_batch - rgb_count
    modality = rng.choice(4, size=count, p=MODALITY_SHARES)
    slot = rng.integers(WINDOW, size=count)
    images = torch.cat([rgb, maps[modality, slot]])
    weights = torch.cat([torch.full((rgb_count,), RGB_WEIGHT), MODALITY_WEIGHTS[modality]])
    height, width = images.shape[-2:]
    crop_height, crop_width = min(config.vae_crop or height, height), min(config.vae_crop or width, width)
    top, left = int(rng.integers(height - crop_height + 1)), int(rng.integers(width - crop_width + 1))
    return images[..., top : top + crop_height, left : left + crop_width], weights


def train_vae(
    vae: Geo4DVAE,
    scenes: SceneSet,
    config: TrainConfig,
    device: torch.device,
    reporter: Reporter | None = None,
    log_path: Path | None = None,
) -> list[dict[str, float]]:
    """Train the main VAE (encoder + decoder) in place: weighted L1 reconstruction of posterior samples
    plus config.kl_weight x KL. Returns the logged loss history."""
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    vae.train().requires_grad_(True)
    optimizer, schedule = make_optimizer(
        list(vae.parameters()), config.vae_lr, config.vae_steps, config.warmup_steps
    )
    log = LossLog("vae", log_path, config.log_every)
    for step in range(config.vae_steps):
        images, weights = vae_batch(scenes, config, rng)
        images, weights = images.to(device), weights.to(device)
        with mixed_precision(device):
            posterior = vae.encode(images)
            decoded = vae.decode(posterior.sample()).float()
        l1 = ((decoded - images).abs().mean(dim=(1, 2, 3)) * weights).mean()
        kl = posterior.kl().float().mean()
        optimisation_step(l1 + config.kl_weight * kl, optimizer, schedule)
        log.add(step, config.vae_steps, l1=l1.item(), kl=kl.item())
        if reporter is not None:
            reporter.report("vae", step + 1, config.vae_steps)
    vae.eval().requires_grad_(False)
    return log.history


@torch.no_grad()
def standardise_latents(vae: Geo4DVAE, scenes: SceneSet, config: TrainConfig, device: torch.device) -> None:
    """Reparametrise the VAE so that scale_factor x (posterior mean) of modality maps has zero mean and unit
    standard deviation per latent channel, as the diffusion schedule assumes; decoding is unchanged.

    With z' = a (z - mu): quant_conv's mean rows are scaled by a and shifted, its log-variance biases
    raised by 2 ln a; post_quant_conv takes z = z'/a + mu, folded into its weights and bias.
    """
    rng = np.random.default_rng(config.seed + 1)
    means = []
    for _ in range(min(STANDARDISE_WINDOWS, config.scenes)):
        maps = window_targets(scenes, *random_window(scenes, config.window_step, rng))
        with mixed_precision(device):
            means.append(vae.encode(maps.flatten(0, 1).to(device)).mean.float())
    latents = torch.cat(means).transpose(0, 1).flatten(1)  # [C, N h w]
    mu, sigma = latents.mean(dim=1), latents.std(dim=1).clamp_min(1e-6)
    gain = 1.0 / (sigma * vae.config.scale_factor)
    channels = vae.config.latent_channels
    autoencoder = vae.autoencoder
    quant, post = autoencoder.quant_conv, autoencoder.post_quant_conv
    quant.weight[:channels] *= gain[:, None, None, None]
    quant.bias[:channels] = gain * (quant.bias[:channels] - mu)
    quant.bias[channels:] += 2 * torch.log(gain)
    post.bias += post.weight[:, :, 0, 0] @ mu
    post.weight /= gain[None, :, None, None]
    logger.info(
        "VAE latents standardised: channel means %s, standard deviations %s (before scale %.5f).",
        np.round(mu.cpu().numpy(), 3).tolist(),
        np.round(sigma.cpu().numpy(), 3).tolist(),
        vae.config.scale_factor,
    )


def pointmap_vae_from(vae: Geo4DVAE) -> Geo4DVAE:
    """A decode-only point-map VAE with an uncertainty head, its decoder copied from `vae`'s."""
    pointmap = Geo4DVAE(vae.config, encoder=False, uncertainty=True).to(next(vae.parameters()).device)
    state = {
        k: v
        for k, v in vae.state_dict().items()
        if k.startswith(("autoencoder.decoder.", "autoencoder.post_quant_conv."))
    }
    missing, unexpected = pointmap.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith("decoder_adaptor.") for name in missing):
        raise RuntimeError(f"Point-map decoder copy failed: missing {missing}, unexpected {unexpected}")
    return pointmap


def laplace_nll(decoded: torch.Tensor, target: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of a Laplace distribution of scale b = softplus(raw) shared by the three
    channels: |x - x*|_1 / b + 3 log b per pixel. decoded, target [N, 3, H, W]; raw [N, 1, H, W]."""
    scale = F.softplus(raw).clamp_min(MIN_LAPLACE_SCALE)
    return ((decoded - target).abs().sum(dim=1, keepdim=True) / scale + 3 * torch.log(scale)).mean()


def finetune_pointmap_decoder(
    pointmap: Geo4DVAE,
    vae: Geo4DVAE,
    scenes: SceneSet,
    config: TrainConfig,
    device: torch.device,
    sampled_latents: LatentSource | None = None,
    reporter: Reporter | None = None,
    log_path: Path | None = None,
) -> list[dict[str, float]]:
    """Fine-tune the point-map decoder and train its uncertainty head by the Laplacian likelihood.

    Latents are posterior samples of the true point maps, or (a share config.pointmap_sampled_share,
    when `sampled_latents` is given) the UNet's own samples of the window, so the uncertainty learns
    where the prediction goes wrong. Returns the logged loss history.
    """
    rng = np.random.default_rng(config.seed + 2)
    pointmap.train().requires_grad_(True)
    optimizer, schedule = make_optimizer(
        list(pointmap.parameters()), config.pointmap_lr, config.pointmap_steps, config.warmup_steps
    )
    log = LossLog("pointmap", log_path, config.log_every)
    for step in range(config.pointmap_steps):
        scene, start, flip = random_window(scenes, config.window_step, rng)
        slots = torch.from_numpy(rng.choice(WINDOW, size=min(WINDOW, config.pointmap_batch), replace=False))
        target = window_targets(scenes, scene, start, flip)[0, slots].to(device)
        sampled = sampled_latents is not None and rng.uniform() < config.pointmap_sampled_share
        with torch.no_grad():
            if sampled:
                latents = sampled_latents(scene, start, flip)[slots].to(device)
            else:
                with mixed_precision(device):
                    latents = vae.encode(target).sample().float()
        with mixed_precision(device):
            decoded, raw = pointmap.decode_with_uncertainty(latents)
        decoded, raw = decoded.float(), raw.float()
        loss = laplace_nll(decoded, target, raw)
        optimisation_step(loss, optimizer, schedule)
        l1 = (decoded.detach() - target).abs().mean().item()
        log.add(step, config.pointmap_steps, nll=loss.item(), l1=l1, sampled=float(sampled))
        if reporter is not None:
            reporter.report("pointmap", step + 1, config.pointmap_steps)
    pointmap.eval().requires_grad_(False)
    return log.history


def reconstruction_error(
    vae: Geo4DVAE, scenes: SceneSet, config: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Mean absolute error of encode-decode (posterior mean) per modality and of the RGB frames on a few
    windows, for the log: the RGB error bounds what the UNet can see of each frame."""
    rng = np.random.default_rng(config.seed + 3)
    errors = torch.zeros(5)
    count = max(1, min(4, config.scenes))
    with torch.no_grad():
        for _ in range(count):
            scene, start, flip = random_window(scenes, config.window_step, rng)
            maps = window_targets(scenes, scene, start, flip)
            rgb = rgb_images(scenes.rgb[scene, start : start + WINDOW], flip)
            images = torch.cat([maps, rgb[None]]).to(device)  # [5, L, 3, H, W]
            with mixed_precision(device):
                decoded = (
                    vae.decode(vae.encode(images.flatten(0, 1)).mean).float().unflatten(0, images.shape[:2])
                )
            errors += (decoded - images).abs().mean(dim=(1, 2, 3, 4)).cpu()
    names = ("point_map", "ray_direction", "ray_moment", "disparity", "rgb")
    return {name: round(float(value) / count, 5) for name, value in zip(names, errors, strict=True)}

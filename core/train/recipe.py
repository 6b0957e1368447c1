"""The whole training run of the embedded model: data, VAE, latents, UNet, point-map decoder, weights file."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..errors import Geo4DError
from ..network.config import NetworkConfig
from ..network.loading import resolve_device
from ..network.network_file import write_network_file
from ..network.unet import UNet3D
from ..network.vae import Geo4DVAE
from ..network.window_pipeline import WindowPipeline
from ..output_folder import check_output_folder, write_file
from ..progress import CancelCheck, ProgressCallback, Reporter
from .autoencoder import (
    finetune_pointmap_decoder,
    pointmap_vae_from,
    reconstruction_error,
    standardise_latents,
    train_vae,
)
from .config import CACHE_NAME, DATA_DIR, LOG_NAME, SUMMARY_NAME, TRAINING_LAYOUT, WEIGHTS_NAME, TrainConfig
from .data import WINDOW, SceneSet, render_scenes
from .denoiser import VIDEO_FPS, LatentSet, c_concat, encode_windows, train_unet

logger = logging.getLogger(__name__)

WEIGHTS_DTYPE = torch.float16  # halves the shipped file; the pipeline loads it in its own precision


def _sampled_pointmap_latents(model: WindowPipeline, latents: LatentSet, config: TrainConfig):
    """A LatentSource: the UNet's sample of a window (the network's own DDIM steps), its point-map latents
    unscaled [L, 4, h, w]."""
    generator = torch.Generator().manual_seed(config.seed + 5)
    scale = model.config.vae.scale_factor

    def sample(scene: int, start: int, flip: bool) -> torch.Tensor:
        window = torch.tensor([scene, start, int(flip)])  # every frame's RGB latent exists in both mirrorings
        condition = c_concat(latents, window, scale, generator)[None].to(model.device)
        noise = torch.randn((1, model.config.unet.out_channels, *condition.shape[2:]), generator=generator)
        with torch.no_grad():
            sampled = model.denoise(condition, VIDEO_FPS, noise, model.sampler(0))
        return sampled[0, :4].transpose(0, 1) / scale

    return sample


def _trained_vae(
    network: NetworkConfig,
    scenes: SceneSet,
    config: TrainConfig,
    device: torch.device,
    reporter: Reporter,
    log_path: Path,
) -> tuple[Geo4DVAE, list[dict[str, float]], dict[str, float]]:
    """A new VAE (torch seeded with the recipe's seed) trained on the scenes, its latents standardised;
    with its loss history and its reconstruction errors."""
    torch.manual_seed(config.seed)
    vae = Geo4DVAE(network.vae, encoder=True, uncertainty=False).to(device)
    history = train_vae(vae, scenes, config, device, reporter, log_path)
    standardise_latents(vae, scenes, config, device)
    errors = reconstruction_error(vae, scenes, config, device)
    logger.info("VAE reconstruction error (L1 per modality and of RGB frames): %s", errors)
    return vae, history, errors


def _trained_unet(
    network: NetworkConfig,
    latents: LatentSet,
    config: TrainConfig,
    device: torch.device,
    reporter: Reporter,
    log_path: Path,
) -> tuple[UNet3D, torch.nn.Parameter, list[dict[str, float]]]:
    """A new UNet and its learned constant context [1, tokens, context_dim], trained on the windows'
    latents, with the loss history."""
    unet = UNet3D(network.unet).to(device)
    tokens = network.unet.text_tokens + network.unet.image_tokens_per_frame * WINDOW
    context = torch.nn.Parameter(torch.randn(1, tokens, network.unet.context_dim, device=device))
    history = train_unet(
        unet,
        context,
        latents,
        config,
        network.vae.scale_factor,
        network.sampling_steps,
        device,
        reporter,
        log_path,
    )
    return unet, context, history


def run_training(
    output: str | Path,
    config: TrainConfig,
    network: NetworkConfig | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Train the model by `config` (network: its `network` preset unless given) into `output`; returns the
    weights file.

    output/ receives data/scenes.npz (the rendered scenes, reused by a rerun with the same scenes),
    train_log.jsonl (losses), train_summary.json (recipe, timings, figures) and geo4d-tiny.safetensors
    in the format of `python -m geo4d convert-checkpoint`, written last and atomically.
    """
    output = check_output_folder(output, TRAINING_LAYOUT)
    network = network or NetworkConfig.preset(config.network)
    torch_device = resolve_device(device)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Geo4DError(f"Cannot create {output}: {error.strerror}. Choose a writable folder.") from error
    log_path = output / LOG_NAME
    log_path.unlink(missing_ok=True)
    reporter = Reporter(progress, cancel)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        logger.info("Stage %s done in %.1f s.", stage, timings[stage])

    size = network.input_sizes[0]
    logger.info("Training %s Geo4D at %dx%d on %s with %s.", config.network, *size, torch_device, config)
    scenes = render_scenes(config, size, output / DATA_DIR / CACHE_NAME, reporter)
    lap("render")

    vae, vae_history, vae_errors = _trained_vae(network, scenes, config, torch_device, reporter, log_path)
    histories = {"vae": vae_history}
    lap("vae")

    latents = encode_windows(vae, scenes, config, torch_device, reporter)
    lap("encode")

    unet, context, histories["unet"] = _trained_unet(
        network, latents, config, torch_device, reporter, log_path
    )
    lap("unet")

    pointmap = pointmap_vae_from(vae)
    model = WindowPipeline(network, unet, vae, pointmap, context.detach())
    sampler = _sampled_pointmap_latents(model, latents, config)
    histories["pointmap"] = finetune_pointmap_decoder(
        pointmap, vae, scenes, config, torch_device, sampler, reporter, log_path
    )
    lap("pointmap")

    weights = output / WEIGHTS_NAME
    modules = {"unet": unet, "vae": vae, "pointmap_vae": pointmap}
    trained = replace(network, sampling_steps_only=config.inference_timestep_share == 1.0)
    write_network_file(weights, modules, context.detach(), trained, WEIGHTS_DTYPE)
    summary = {
        "recipe": asdict(config),
        "seeds": [config.seeds[0], config.seeds[-1]],
        "input_size": list(size),
        "device": str(torch_device),
        "threads": torch.get_num_threads(),
        "timings_s": timings,
        "total_s": round(sum(timings.values()), 1),
        "vae_reconstruction_l1": vae_errors,
        "final_losses": {stage: history[-1] if history else {} for stage, history in histories.items()},
        "parameters": {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()},
    }
    text = json.dumps(summary, indent=2) + "\n"
    write_file(output / SUMMARY_NAME, lambda partial: partial.write_text(text), None, "training summary")
    logger.info("Wrote %s after %.0f s of training.", weights, summary["total_s"])
    return weights

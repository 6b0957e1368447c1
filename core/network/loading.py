"""Loading a Geo4D window pipeline: the device and dtype a setting names, weights files, random networks.

The one place that turns device/precision settings into torch devices and dtypes (the reconstruction, the
training recipe and the worker's set-up check all resolve them here).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from ..errors import Geo4DError
from ..model_choice import model_files
from ..out_of_memory import out_of_memory_as_error
from ..settings import DEVICES, PRECISIONS
from .checkpoint import INFERENCE_PARTS, MODEL_SENTINELS, build_part, load_published, read_torch_checkpoint
from .clip import constant_context
from .config import NetworkConfig
from .network_file import load_network_file
from .window_pipeline import WindowPipeline

logger = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CONTEXT_PARTS = ("text", "visual", "resampler")


def resolve_device(device: str = "auto") -> torch.device:
    """torch device of a setting: auto = CUDA when available; Geo4DError when CUDA is asked for but absent."""
    if device not in DEVICES:
        raise Geo4DError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise Geo4DError(
            "CUDA was requested, but this PyTorch sees no usable CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}). Use device 'cpu' or 'auto', "
            "or install a CUDA build of PyTorch that matches your driver."
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Weights' dtype of a precision setting on a device; fp16 is refused on the CPU (too slow, inexact)."""
    if precision not in PRECISIONS:
        raise Geo4DError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise Geo4DError("Precision fp16 needs a CUDA GPU; on the CPU use fp32 (or bf16).")
    return DTYPES[precision]


def published_config(model_path: Path) -> NetworkConfig:
    """The preset (full or tiny widths) of a published-format model.ckpt, recognised by its UNet input conv."""
    state = read_torch_checkpoint(model_path)
    key = MODEL_SENTINELS[0]
    if key not in state:
        raise Geo4DError(f"{model_path} is not a Geo4D model.ckpt: it lacks the key {key}.")
    width = state[key].shape[0]
    for name in ("full", "tiny"):
        config = NetworkConfig.preset(name)
        if config.unet.model_channels == width:
            return config
    raise Geo4DError(
        f"{model_path} has a UNet {width} channels wide; this geo4d knows the published network (320) and the "
        "tiny one (32). Use the published Geo4D weights."
    )


def published_context(model_path: str | os.PathLike, config: NetworkConfig) -> torch.Tensor:
    """The constant context [1, 77 + 16 L, context_dim] float32 computed on the CPU from model.ckpt's
    text tower, image embedder and resampler (memory-mapped weights; dropped afterwards)."""
    towers = load_published(model_path, None, config, CONTEXT_PARTS, "cpu", torch.float32)
    return constant_context(towers["text"], towers["visual"], towers["resampler"])


def load_weights(
    weights: Path,
    vae: Path | None,
    device: torch.device,
    dtype: torch.dtype,
    config: NetworkConfig | None = None,
) -> WindowPipeline:
    """The window pipeline of our `.safetensors` (vae None) or of the published model.ckpt + vae.ckpt.

    From the published files the constant context is computed once on the CPU in float32 from the CLIP
    towers, which are then dropped; config: their network (None: recognised by published_config). Our
    file carries its own config. Weights go straight to `device` in `dtype`.
    """
    if vae is None:
        config, modules, context = load_network_file(weights, device, dtype)
    else:
        config = config or published_config(weights)
        context = published_context(weights, config)
        modules = load_published(weights, vae, config, INFERENCE_PARTS, device, dtype)
    return WindowPipeline(config, modules["unet"], modules["vae"], modules["pointmap_vae"], context)


def load_model(model: str | Path, device: str = "auto", precision: str = "auto") -> WindowPipeline:
    """The window pipeline named by `model` (see core.model_choice.model_files), on `device` in `precision`;
    its `source` is that model setting (results record it, and "tiny" is told from other weights by it)."""
    weights, vae = model_files(model)
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision, torch_device)
    started = time.perf_counter()
    with out_of_memory_as_error("load", torch_device):
        network = load_weights(weights, vae, torch_device, dtype)
    logger.info(
        "Loaded %s on %s (%s) in %.1f s.", weights.name, torch_device, dtype, time.perf_counter() - started
    )
    network.source = str(model)
    return network


def random_network(
    config: NetworkConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> WindowPipeline:
    """Randomly initialised network (torch's default init under `seed`), for tests and benchmarks.

    The context is random N(0, 1) of the right shape instead of CLIP features of random towers.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        modules = {
            part: build_part(part, config).to(dtype).requires_grad_(False).eval() for part in INFERENCE_PARTS
        }
    unet_config = config.unet
    tokens = unet_config.text_tokens + unet_config.image_tokens_per_frame * unet_config.temporal_length
    context = torch.randn(1, tokens, unet_config.context_dim)
    return WindowPipeline(config, modules["unet"], modules["vae"], modules["pointmap_vae"], context)

"""Which Geo4D network runs: the built-in `tiny` model or a checkpoint file, on which device, in which precision."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..errors import Geo4DError
from ..limits import DEVICES, PRECISIONS
from ..out_of_memory import out_of_memory_as_error
from .checkpoint import MODEL_SENTINELS, read_torch_checkpoint
from .config import NetworkConfig
from .window_pipeline import Geo4D

logger = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TINY_MODEL = "tiny"
TINY_WEIGHTS = Path(__file__).parent.parent / "weights" / "geo4d-tiny.safetensors"
PUBLISHED_VAE_NAME = "vae.ckpt"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")


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


def model_files(model: str | Path) -> tuple[Path, Path | None]:
    """(weights file, point-map VAE file or None) named by a model setting.

    "tiny": the trained model shipped in the package. A `.safetensors` path: our converted format (one
    file). A published `model.ckpt`: its `vae.ckpt` is taken from beside it, or given explicitly as
    "model.ckpt,vae.ckpt". Anything else that is neither a name nor an existing file is an unknown model.
    """
    text = str(model)
    if isinstance(model, str) and text == TINY_MODEL:
        if not TINY_WEIGHTS.is_file():
            raise Geo4DError(
                f"The built-in model 'tiny' is missing from this installation (expected {TINY_WEIGHTS}). "
                "Reinstall geo4d, train it with `python -m geo4d train`, or give a checkpoint file instead."
            )
        return TINY_WEIGHTS, None
    weights_text, _, vae_text = text.partition(",")
    weights = Path(weights_text).expanduser()
    looks_like_path = isinstance(model, Path) or bool(vae_text) or weights.suffix in CHECKPOINT_SUFFIXES
    looks_like_path = looks_like_path or "/" in weights_text or "\\" in weights_text
    if not weights.exists() and not looks_like_path:
        raise Geo4DError(
            f"Unknown model {text!r}. The built-in model is '{TINY_MODEL}'; otherwise give the path of a checkpoint: "
            "a .safetensors made by `python -m geo4d convert-checkpoint`, or the published Geo4D model.ckpt."
        )
    if not weights.is_file():
        raise Geo4DError(
            f"Checkpoint not found: {weights}. Check the path to your copy of the Geo4D weights."
        )
    if weights.suffix == ".safetensors":
        return weights, None
    vae = Path(vae_text).expanduser() if vae_text else weights.with_name(PUBLISHED_VAE_NAME)
    if not vae.is_file():
        raise Geo4DError(
            f"The point-map VAE {vae} was not found. The published model needs both files: put vae.ckpt beside "
            f"model.ckpt, or give both as 'model.ckpt,vae.ckpt'."
        )
    return weights, vae


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


def load_model(model: str | Path, device: str = "auto", precision: str = "auto") -> Geo4D:
    """The Geo4D predictor named by `model` (see model_files), on `device` in `precision`; its `source`
    is that model setting (results record it, and "tiny" is told from other weights by it)."""
    weights, vae = model_files(model)
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision, torch_device)
    started = time.perf_counter()
    with out_of_memory_as_error("load", torch_device):
        if vae is None:
            network = Geo4D.from_checkpoint(weights, device=torch_device, dtype=dtype)
        else:
            config = published_config(weights)
            network = Geo4D.from_checkpoint(weights, vae, config=config, device=torch_device, dtype=dtype)
    logger.info(
        "Loaded %s on %s (%s) in %.1f s.", weights.name, torch_device, dtype, time.perf_counter() - started
    )
    network.source = str(model)
    return network

"""The published Geo4D weights: model.ckpt and vae.ckpt read (never unpickling code) onto our modules.

Published files are read with torch.load(weights_only=True, mmap=True): tensors stay in the file's pages
until each is moved to its device, so no second copy is made in RAM. A file is recognised by a few
sentinel keys; every key is renamed by rule onto our modules (or dropped by a named rule), every shape is
checked, and any missing or unexpected key fails with a message naming a few of them and the count.
Our own single-file format (after convert-checkpoint) is in network_file.py.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import Geo4DError
from . import clip, resampler, unet
from .clip import ImageEmbedder, TextTower
from .config import NetworkConfig
from .resampler import Resampler
from .unet import UNet3D
from .vae import (
    Geo4DVAE,
    ldm_vae_key_to_ours,
    ldm_vae_tensor_to_ours,
    our_vae_key_to_ldm,
    our_vae_tensor_to_ldm,
)

logger = logging.getLogger(__name__)

DEEPSPEED_PREFIX = "_forward_module."
# Our part name -> its prefix in model.ckpt's state_dict.
MODEL_PART_PREFIXES: dict[str, str] = {
    "unet": "model.diffusion_model.",
    "vae": "first_stage_model.",
    "text": "cond_stage_model.model.",
    "visual": "embedder.model.",
    "resampler": "image_proj_model.",
}
POINTMAP_VAE_PREFIX = "model."  # vae.ckpt: the fine-tuned point-map VAE, loaded as our part "pointmap_vae"
PART_RENAMES: dict[str, dict[str, str]] = {
    "unet": unet.CHECKPOINT_RENAMES,
    "text": clip.CHECKPOINT_RENAMES,
    "visual": clip.CHECKPOINT_RENAMES,
    "resampler": resampler.CHECKPOINT_RENAMES,
}
VAE_PARTS = ("vae", "pointmap_vae")
# The parts a window prediction needs; the CLIP towers and resampler only make the constant context.
INFERENCE_PARTS = ("unet", "vae", "pointmap_vae")

# A file's kind is recognised by these keys (after removing a DeepSpeed prefix).
MODEL_SENTINELS = (
    "model.diffusion_model.input_blocks.0.0.weight",
    "first_stage_model.decoder.conv_in.weight",
)
POINTMAP_VAE_SENTINELS = ("model.decoder.conv_in.weight", "model.post_quant_conv.weight")

SCHEDULE_BUFFERS = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "scale_arr",
)


@dataclass(frozen=True)
class DropRule:
    """Checkpoint keys that are accepted and not loaded: exact names or name prefixes, and why."""

    why: str
    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def matches(self, key: str) -> bool:
        return key in self.names or key.startswith(self.prefixes)


MODEL_DROPS = (
    DropRule("diffusion schedule tables: the sampler recomputes them", names=SCHEDULE_BUFFERS),
    DropRule(
        "the VAE's encoder adaptor: used in training only", prefixes=("first_stage_model.encoder_adaptor.",)
    ),
    DropRule(
        "the first-stage VAE's uncertainty head: point maps are decoded by vae.ckpt's",
        prefixes=("first_stage_model.decoder_adaptor.",),
    ),
    DropRule(
        "text-tower leftovers in the image embedder, never run",
        names=tuple(MODEL_PART_PREFIXES["visual"] + name for name in clip.CHECKPOINT_UNUSED),
    ),
)
POINTMAP_VAE_DROPS = (
    DropRule(
        "the point-map VAE only decodes: its encoder parts are not used",
        prefixes=tuple(POINTMAP_VAE_PREFIX + p for p in ("encoder.", "quant_conv.", "encoder_adaptor.")),
    ),
)

SHOWN_KEYS = 5  # how many offending keys an error message lists


def _rename_parts(name: str, renames: dict[str, str]) -> str:
    """Rename whole dot-separated parts of `name` by `renames` (old part -> new part)."""
    return ".".join(renames.get(part, part) for part in name.split("."))


def checkpoint_key_to_ours(key: str, config: NetworkConfig) -> tuple[str, str] | None:
    """(part, our state_dict name) of a model.ckpt key, or None when the key belongs to no part."""
    for part, prefix in MODEL_PART_PREFIXES.items():
        if key.startswith(prefix):
            return part, _our_name(part, key[len(prefix) :], config)
    return None


def _our_name(part: str, name: str, config: NetworkConfig) -> str:
    if part in VAE_PARTS:
        return ldm_vae_key_to_ours(name, len(config.vae.channel_mult))
    return _rename_parts(name, PART_RENAMES[part])


def our_key_to_checkpoint(part: str, key: str, config: NetworkConfig) -> str:
    """The published name of one of our state_dict keys (inverse of checkpoint_key_to_ours)."""
    if part in VAE_PARTS:
        prefix = POINTMAP_VAE_PREFIX if part == "pointmap_vae" else MODEL_PART_PREFIXES["vae"]
        return prefix + our_vae_key_to_ldm(key, len(config.vae.channel_mult))
    inverse = {new: old for old, new in PART_RENAMES[part].items()}
    return MODEL_PART_PREFIXES[part] + _rename_parts(key, inverse)


def build_part(part: str, config: NetworkConfig) -> nn.Module:
    """A freshly built module for `part` (build under `torch.device("meta")` to allocate nothing)."""
    builders: dict[str, Callable[[], nn.Module]] = {
        "unet": lambda: UNet3D(config.unet),
        "vae": lambda: Geo4DVAE(config.vae, encoder=True, uncertainty=False),
        "pointmap_vae": lambda: Geo4DVAE(config.vae, encoder=False, uncertainty=True),
        "text": lambda: TextTower(config.text),
        "visual": lambda: ImageEmbedder(config.visual),
        "resampler": lambda: Resampler(config.resampler),
    }
    if part not in builders:
        raise ValueError(f"network part {part!r}: must be one of {sorted(builders)}")
    return builders[part]()


def describe_keys(keys: Iterable[str]) -> str:
    """The count and the first few of `keys`, sorted: 'N: a, b' or 'N (e.g. a, b, ...)'."""
    keys = sorted(keys)
    shown = ", ".join(keys[:SHOWN_KEYS])
    return f"{len(keys)} (e.g. {shown})" if len(keys) > SHOWN_KEYS else f"{len(keys)}: {shown}"


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The flat tensor dict of a Lightning/DeepSpeed `.ckpt` (memory-mapped; no pickled code runs).

    Accepts {"state_dict": {...}}, DeepSpeed's {"module": {"_forward_module.<key>": ...}}, or a bare
    state dict. Raises Geo4DError when the file is missing, is not a PyTorch checkpoint, is truncated
    or damaged, or holds Python objects beyond tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise Geo4DError(f"{path} is a folder; give the checkpoint file in it (model.ckpt or vae.ckpt).")
    if not path.is_file():
        raise Geo4DError(f"Checkpoint not found: {path}. Check the path to your copy of the Geo4D weights.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as file:
            head = file.read(4)
        if head[:2] == b"PK":
            raise Geo4DError(
                f"{path} is truncated or damaged (its zip directory is missing); download it again."
            )
        raise Geo4DError(
            f"{path} is not a PyTorch checkpoint (expected the Geo4D model.ckpt or vae.ckpt, a zip-format "
            "torch.save file)."
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise Geo4DError(
            f"{path} holds Python objects besides tensors, and loading them could run code, so geo4d refuses. "
            f"Re-save only its state_dict on a machine you trust. ({str(error).splitlines()[0]})"
        ) from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise Geo4DError(f"{path} is truncated or damaged ({error}); download it again.") from error
    state = loaded
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        state = loaded["state_dict"]
    elif isinstance(loaded, dict) and isinstance(loaded.get("module"), dict):
        state = loaded["module"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Geo4DError(f"{path} is a PyTorch file but not a checkpoint: it has no state_dict of tensors.")
    return {k.removeprefix(DEEPSPEED_PREFIX): v for k, v in state.items()}


def _check_kind(path: Path, state: dict[str, torch.Tensor], wanted: str) -> None:
    """Fail clearly when the model file and the point-map VAE file are swapped or foreign."""
    is_model = any(key in state for key in MODEL_SENTINELS)
    is_vae = not is_model and all(key in state for key in POINTMAP_VAE_SENTINELS)
    if wanted == "model" and is_vae:
        raise Geo4DError(
            f"{path} is the point-map VAE (vae.ckpt), not the Geo4D model: give model.ckpt as the model "
            "and this file as the VAE."
        )
    if wanted == "vae" and is_model:
        raise Geo4DError(
            f"{path} is the Geo4D model (model.ckpt), not the point-map VAE: give vae.ckpt as the VAE "
            "and this file as the model."
        )
    if (wanted == "model" and not is_model) or (wanted == "vae" and not is_vae):
        names = {"model": "Geo4D model.ckpt", "vae": "Geo4D point-map vae.ckpt"}
        raise Geo4DError(
            f"{path} is not the {names[wanted]}: none of its keys look like it "
            f"(expected e.g. {(MODEL_SENTINELS if wanted == 'model' else POINTMAP_VAE_SENTINELS)[0]})."
        )


def split_model_state(
    state: dict[str, torch.Tensor], config: NetworkConfig, parts: Iterable[str]
) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """model.ckpt tensors by our part and name (only `parts`), plus the keys no part and no rule takes."""
    wanted = set(parts)
    by_part: dict[str, dict[str, torch.Tensor]] = {part: {} for part in wanted}
    unexpected = []
    for key, tensor in state.items():
        if any(rule.matches(key) for rule in MODEL_DROPS):
            continue
        target = checkpoint_key_to_ours(key, config)
        if target is None:
            unexpected.append(key)
        elif target[0] in wanted:
            part, name = target
            by_part[part][name] = ldm_vae_tensor_to_ours(name, tensor) if part in VAE_PARTS else tensor
    return by_part, unexpected


def split_pointmap_vae_state(
    state: dict[str, torch.Tensor], config: NetworkConfig
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """vae.ckpt tensors under our point-map VAE names, plus the keys no rule takes."""
    ours, unexpected = {}, []
    levels = len(config.vae.channel_mult)
    for key, tensor in state.items():
        if any(rule.matches(key) for rule in POINTMAP_VAE_DROPS):
            continue
        if not key.startswith(POINTMAP_VAE_PREFIX):
            unexpected.append(key)
            continue
        name = ldm_vae_key_to_ours(key[len(POINTMAP_VAE_PREFIX) :], levels)
        ours[name] = ldm_vae_tensor_to_ours(name, tensor)
    return ours, unexpected


def fill_modules(
    modules: dict[str, nn.Module],
    tensors: dict[str, dict[str, torch.Tensor]],
    config: NetworkConfig,
    source: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> None:
    """Give every parameter of `modules` (built on `meta` or anywhere) its tensor, moved to device/dtype.

    Raises Geo4DError listing missing keys, unexpected keys and shape mismatches (published names).
    The modules come back in eval mode without gradients.
    """
    missing, unexpected, mismatched = [], [], []
    for part, module in modules.items():
        expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
        given = tensors.get(part, {})
        missing += [our_key_to_checkpoint(part, name, config) for name in expected.keys() - given.keys()]
        unexpected += [our_key_to_checkpoint(part, name, config) for name in given.keys() - expected.keys()]
        mismatched += [
            f"{our_key_to_checkpoint(part, name, config)} {list(given[name].shape)} (expected {list(shape)})"
            for name, shape in expected.items()
            if name in given and tuple(given[name].shape) != shape
        ]
    problems = []
    if missing:
        problems.append(f"missing keys {describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {describe_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {describe_keys(mismatched)}")
    if problems:
        raise Geo4DError(
            f"{source} does not fit the network configuration: " + "; ".join(problems) + ". "
            "Use the Geo4D weights this version supports, or the configuration they were made with."
        )
    # Always copied: a tensor read from a file map sits at whatever byte offset the file gives it, and the
    # CPU kernels' rounding depends on alignment, so a model would compute differently from each file.
    for part, module in modules.items():
        state = {
            name: tensor.to(
                device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype, copy=True
            )
            for name, tensor in tensors[part].items()
        }
        module.load_state_dict(state, strict=True, assign=True)
        module.requires_grad_(False).eval()


def load_published(
    model_path: str | os.PathLike,
    vae_path: str | os.PathLike | None,
    config: NetworkConfig,
    parts: Iterable[str],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, nn.Module]:
    """Our modules for `parts`, filled from the published model.ckpt (and vae.ckpt for "pointmap_vae").

    Every model.ckpt key must map onto a part (loaded or not) or a drop rule; the loaded parts must be
    filled completely with the right shapes.
    """
    parts = list(parts)
    model_path = Path(model_path)
    state = read_torch_checkpoint(model_path)
    _check_kind(model_path, state, "model")
    model_parts = [part for part in parts if part != "pointmap_vae"]
    tensors, unexpected = split_model_state(state, config, model_parts)
    if unexpected:
        raise Geo4DError(
            f"{model_path} has unexpected keys {describe_keys(unexpected)}; it is not a Geo4D model.ckpt this "
            "version can read."
        )
    sources = [str(model_path)]
    if "pointmap_vae" in parts:
        if vae_path is None:
            raise Geo4DError("The point-map VAE (vae.ckpt) is needed too: give its path next to model.ckpt.")
        vae_path = Path(vae_path)
        vae_state = read_torch_checkpoint(vae_path)
        _check_kind(vae_path, vae_state, "vae")
        tensors["pointmap_vae"], unexpected = split_pointmap_vae_state(vae_state, config)
        if unexpected:
            raise Geo4DError(
                f"{vae_path} has unexpected keys {describe_keys(unexpected)}; it is not a Geo4D vae.ckpt."
            )
        sources.append(str(vae_path))
    with torch.device("meta"):
        modules = {part: build_part(part, config) for part in parts}
    fill_modules(modules, tensors, config, " + ".join(sources), device, dtype)
    return modules


def published_state_dict(
    modules: dict[str, nn.Module], config: NetworkConfig
) -> dict[str, dict[str, torch.Tensor]]:
    """Our modules' tensors under the published names: {"model": model.ckpt keys, "vae": vae.ckpt keys}.

    For tests and the demo model: files written from this (torch.save({"state_dict": ...})) read like
    the authors' files, except that keys the loader drops by rule are absent.
    """
    files: dict[str, dict[str, torch.Tensor]] = {"model": {}, "vae": {}}
    for part, module in modules.items():
        for name, tensor in module.state_dict().items():
            key = our_key_to_checkpoint(part, name, config)
            if part in VAE_PARTS:
                tensor = our_vae_tensor_to_ldm(name, tensor)
            files["vae" if part == "pointmap_vae" else "model"][key] = tensor
    return files

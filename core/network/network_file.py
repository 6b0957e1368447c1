"""Our single-file network format: UNet + both VAEs + the constant context in one safetensors file.

`python -m geo4d convert-checkpoint` writes it from the published files; loading it needs no CLIP towers
and reads every tensor straight onto its device. Keys are `<part>.<our name>` for the parts in
INFERENCE_PARTS, plus `context`; the metadata holds the format, its version, the dtype and the
NetworkConfig as JSON.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import Geo4DError
from ..output_folder import write_file
from .checkpoint import INFERENCE_PARTS, build_part, describe_keys, fill_modules
from .config import NetworkConfig

logger = logging.getLogger(__name__)

NETWORK_FORMAT = "geo4d-network"
NETWORK_FORMAT_VERSION = "1"
CONTEXT_KEY = "context"
NETWORK_KIND = "network file"


def network_config_to_json(config: NetworkConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True)


def network_config_from_json(text: str) -> NetworkConfig:
    """Inverse of network_config_to_json (lists back to tuples); TypeError/ValueError on bad fields."""
    data = json.loads(text)
    sections = {}
    for section in fields(NetworkConfig):
        if section.name not in data:  # older files get the default (published input sizes, 5 steps)
            continue
        values = data[section.name]
        if section.name == "input_sizes":
            sections[section.name] = tuple(tuple(size) for size in values)
        elif section.default_factory is not MISSING:  # a component's config
            sections[section.name] = section.default_factory(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
            )
        else:
            sections[section.name] = values
    return NetworkConfig(**sections)


def write_network_file(
    path: str | os.PathLike,
    modules: dict[str, nn.Module],
    context: torch.Tensor,
    config: NetworkConfig,
    dtype: torch.dtype,
    inputs: tuple[str | os.PathLike, ...] = (),
) -> None:
    """Write our single-file format: `<part>.<name>` tensors of INFERENCE_PARTS, the constant context
    [1, 77 + 16 L, context_dim] and the network config as metadata. By core.output_folder's contract: a
    hidden file beside `path` renamed over it, so a failure never leaves a half-written file; an existing
    `path` is replaced only when it is a network file of ours, never when it is one of `inputs`.
    """
    tensors = {CONTEXT_KEY: context.detach().to("cpu", dtype).contiguous()}
    for part in INFERENCE_PARTS:
        for name, tensor in modules[part].state_dict().items():
            cast = tensor.detach().to("cpu", dtype if tensor.is_floating_point() else tensor.dtype)
            tensors[f"{part}.{name}"] = cast.contiguous()
    metadata = {
        "format": NETWORK_FORMAT,
        "version": NETWORK_FORMAT_VERSION,
        "config": network_config_to_json(config),
        "dtype": str(dtype).removeprefix("torch."),
    }
    write_file(
        path,
        lambda partial: save_file(tensors, str(partial), metadata=metadata),
        is_network_file,
        NETWORK_KIND,
        inputs,
    )


def is_network_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a safetensors file carrying our network format (of any version): one Geo4D wrote."""
    try:
        with safe_open(str(path), framework="pt") as file:
            return (file.metadata() or {}).get("format") == NETWORK_FORMAT
    except (SafetensorError, OSError):
        return False


def read_network_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of our `.safetensors` file; Geo4DError when missing, damaged or not ours."""
    path = Path(path)
    if not path.is_file():
        raise Geo4DError(
            f"Network file not found: {path}. Convert the checkpoint first (convert-checkpoint)."
        )
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise Geo4DError(
            f"{path} is not a readable safetensors file ({error}); convert the checkpoint again."
        ) from error
    if metadata.get("format") != NETWORK_FORMAT:
        raise Geo4DError(
            f"{path} is a safetensors file but not a geo4d network (no '{NETWORK_FORMAT}' metadata); "
            "make it with `python -m geo4d convert-checkpoint`."
        )
    if metadata.get("version") != NETWORK_FORMAT_VERSION:
        raise Geo4DError(
            f"{path} has network format version {metadata.get('version')}; this geo4d reads version "
            f"{NETWORK_FORMAT_VERSION}. Convert the checkpoint again with this version."
        )
    return metadata


def load_network_file(
    path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> tuple[NetworkConfig, dict[str, nn.Module], torch.Tensor]:
    """(config, INFERENCE_PARTS modules, constant context) from our `.safetensors` file.

    Tensors are read straight onto `device` (no CLIP towers involved); dtype None keeps the file's.
    """
    metadata = read_network_metadata(path)
    try:
        config = network_config_from_json(metadata["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise Geo4DError(f"{path} has a network configuration this geo4d cannot read ({error}).") from error
    tensors: dict[str, dict[str, torch.Tensor]] = {part: {} for part in INFERENCE_PARTS}
    unexpected, context = [], None
    with safe_open(str(path), framework="pt", device=str(device)) as file:
        for key in file.keys():
            part, _, name = key.partition(".")
            if key == CONTEXT_KEY:
                context = file.get_tensor(key)
            elif part in tensors:
                tensors[part][name] = file.get_tensor(key)
            else:
                unexpected.append(key)
    if unexpected or context is None:
        raise Geo4DError(
            f"{path} is damaged: "
            + (f"unexpected keys {describe_keys(unexpected)}" if unexpected else "no context")
            + "; convert the checkpoint again."
        )
    file_dtype = context.dtype
    with torch.device("meta"):
        modules = {part: build_part(part, config) for part in INFERENCE_PARTS}
    fill_modules(modules, tensors, config, str(path), device, dtype or file_dtype)
    return config, modules, context.to(dtype=dtype or file_dtype, copy=True)  # owned memory, as fill_modules

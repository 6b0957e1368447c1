"""Shared fixtures for the network tests: the golden vectors and the published checkpoint's key/shape list."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DATA = Path(__file__).parents[2] / "data"


@pytest.fixture(scope="session")
def golden() -> Callable[[str], dict[str, torch.Tensor]]:
    """`golden("unet")` -> every tensor of tests/data/golden/unet.safetensors, by name."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def load(component: str) -> dict[str, torch.Tensor]:
        if component not in cache:
            cache[component] = load_file(DATA / "golden" / f"{component}.safetensors")
        return cache[component]

    return load


@pytest.fixture(scope="session")
def published_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of the published model.ckpt with its shape."""
    with open(DATA / "geo4d_state_dict_shapes.json") as file:
        return {key: tuple(shape) for key, shape in json.load(file).items()}


@pytest.fixture(scope="session")
def published_part(
    published_shapes: dict[str, tuple[int, ...]],
) -> Callable[..., dict[str, tuple[int, ...]]]:
    """`published_part(prefix, renames, unused)` -> the shapes of one component's published keys, named as
    its module names them: prefix removed, each dot-separated part renamed, `unused` keys left out."""

    def part(
        prefix: str, renames: Mapping[str, str], unused: tuple[str, ...] = ()
    ) -> dict[str, tuple[int, ...]]:
        return {
            ".".join(renames.get(name, name) for name in key[len(prefix) :].split(".")): shape
            for key, shape in published_shapes.items()
            if key.startswith(prefix) and key[len(prefix) :] not in unused
        }

    return part


@pytest.fixture(scope="session")
def shapes_of() -> Callable[[torch.nn.Module], dict[str, tuple[int, ...]]]:
    """`shapes_of(module)` -> its state_dict's keys with their shapes (works on the meta device)."""
    return lambda module: {key: tuple(value.shape) for key, value in module.state_dict().items()}

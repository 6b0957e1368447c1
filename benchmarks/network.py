"""Network benchmarks: parameter counts per part of the Geo4D network (`python benchmarks/network.py`)."""

from __future__ import annotations

import argparse
import logging

import torch
from torch import nn

from geo4d.core.model.clip import ImageEmbedder, TextTower
from geo4d.core.model.config import NetworkConfig
from geo4d.core.model.resampler import Resampler
from geo4d.core.model.unet import UNet3D

logger = logging.getLogger(__name__)


def parameter_counts(config: NetworkConfig) -> dict[str, int]:
    """Parameters per part, built on the meta device (no memory, no weights): part name -> count."""
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            "UNet": UNet3D(config.unet),
            "text tower": TextTower(config.text),
            "visual tower": ImageEmbedder(config.visual),
            "resampler": Resampler(config.resampler),
        }
    return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}


def print_parameter_counts(preset: str) -> None:
    counts = parameter_counts(NetworkConfig.preset(preset))
    print(f"parameters of the `{preset}` network (meta device)")
    for name, count in counts.items():
        print(f"  {name:<14} {count:>15,}  ({count / 1e6:9.2f} M)")
    total = sum(counts.values())
    print(f"  {'total':<14} {total:>15,}  ({total / 1e6:9.2f} M)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="full", choices=["full", "tiny"], help="network size to count")
    args = parser.parse_args()
    print_parameter_counts(args.preset)


if __name__ == "__main__":
    main()

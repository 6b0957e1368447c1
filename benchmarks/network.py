"""Network benchmarks: parameter counts per part, and seconds per UNet step / per window with peak memory.

`python benchmarks/network.py` prints the counts for the `full` network (meta device), then times `tiny` on
the CPU, and `full` with random weights at 512x320x16 in bf16 when CUDA is present.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import numpy as np
import torch
from torch import nn

from geo4d.core.network.clip import ImageEmbedder, TextTower
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network
from geo4d.core.network.resampler import Resampler
from geo4d.core.network.unet import UNet3D
from geo4d.core.network.vae import Geo4DVAE

logger = logging.getLogger(__name__)


def parameter_counts(config: NetworkConfig) -> dict[str, int]:
    """Parameters per part, built on the meta device (no memory, no weights): part name -> count."""
    with torch.device("meta"):
        parts: dict[str, nn.Module] = {
            "UNet": UNet3D(config.unet),
            "text tower": TextTower(config.text),
            "visual tower": ImageEmbedder(config.visual),
            "resampler": Resampler(config.resampler),
            "VAE": Geo4DVAE(config.vae),
            "point-map VAE": Geo4DVAE(config.vae, encoder=False, uncertainty=True),
        }
    return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}


def print_parameter_counts(preset: str) -> None:
    counts = parameter_counts(NetworkConfig.preset(preset))
    print(f"parameters of the `{preset}` network (meta device)")
    for name, count in counts.items():
        print(f"  {name:<14} {count:>15,}  ({count / 1e6:9.2f} M)")
    total = sum(counts.values())
    print(f"  {'total':<14} {total:>15,}  ({total / 1e6:9.2f} M)")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device, repeats: int) -> float:
    """Median wall-clock seconds of `function()` over `repeats` runs (after one warm-up run)."""
    function()
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    return f"peak process RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"


def time_window(
    preset: str, width: int, height: int, device: torch.device, dtype: torch.dtype, repeats: int
) -> None:
    """Seconds per UNet step and per window (the network's own DDIM steps, encoding and decoding 4 x 16
    frames)."""
    config = NetworkConfig.preset(preset)
    model = random_network(config, seed=0, device=device, dtype=dtype)
    frames = np.random.default_rng(0).integers(
        0, 256, size=(config.unet.temporal_length, height, width, 3), dtype=np.uint8
    )
    down = config.vae.downsampling
    latent = torch.randn(
        1, config.unet.in_channels, config.unet.temporal_length, height // down, width // down
    )
    latent = latent.to(device, dtype)
    timestep, fps = torch.tensor([999], device=device), torch.tensor([24], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        step = timed(lambda: model.unet(latent, timestep, model.context, fps), device, repeats)
    window = timed(
        lambda: model.predict_window(frames, 24, None, 0, steps=0, decode_batch=16), device, repeats
    )
    steps = model.sampler(0).config.steps
    sampling = f"{steps} DDIM step{'s' if steps != 1 else ''} + VAE"
    label = f"`{preset}` {width}x{height}x{config.unet.temporal_length} {str(dtype).removeprefix('torch.')} on {device}"
    print(
        f"{label}: {step:.3f} s per UNet step, {window:.3f} s per window ({sampling}), {peak_memory(device)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="full", choices=["full", "tiny"], help="network size to count")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median; default 3)")
    parser.add_argument("--tiny-size", default="256x192", help="WIDTHxHEIGHT for the CPU run of `tiny`")
    args = parser.parse_args()
    print_parameter_counts(args.preset)
    width, height = (int(v) for v in args.tiny_size.split("x"))
    time_window("tiny", width, height, torch.device("cpu"), torch.float32, args.repeats)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        time_window("full", 512, 320, torch.device("cuda"), torch.bfloat16, args.repeats)
    else:
        print("`full` 512x320x16 bf16: skipped, no CUDA device here")


if __name__ == "__main__":
    main()

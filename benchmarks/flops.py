"""FLOPs and bytes moved per window and per output frame, stage by stage, counted on the meta device.

`python benchmarks/flops.py` counts the `full` network at 512x320, window length 16, stride 4 and the
network's own 5 DDIM steps in bf16, and prints the roofline time per output frame on an H100 SXM and an
H200 beside the paper's 1.89 s, before and after each frame is encoded once per clip instead of once per
window (core/network/frame_posteriors.py).

Counting. Every stage runs once on the meta device (shapes only: no weights, no memory), under
torch.utils.flop_counter.FlopCounterMode: frame encode, one UNet call (one DDIM step), the point-map
decode with its uncertainty head, and the main VAE's decode (the disparity, ray direction and ray moment
decodes are the same call on other latents). Bytes: each FLOP-counted op (matmul, convolution,
attention) reads its inputs and writes its output once, at the element size the stage runs in; weights
are inputs, so parameter bytes are read once per op call (once per batch). Attention counts as one fused
op (q, k, v in, output out: the score matrix stays on the chip, as in flash attention). Normalisation and
elementwise ops are taken as fused into their neighbours and not counted ("bytes"), so the roofline time
per stage, max(FLOPs / peak, bytes / bandwidth), is the least the hardware allows; "unfused bytes" adds
every other op's reads and writes (no fusion at all), an upper bound.

Per output frame at stride s (windows of L frames; one window per s frames in a long clip): encode L / s
frames per window path (before) or 1 (each frame once, after); UNet steps / s calls; each decode L / s
frames (every window decodes its own maps of every frame it holds).
"""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network

PAPER_SECONDS_PER_FRAME = 1.89  # Geo4D paper: 512x320, stride 4
GOAL_SECONDS_PER_FRAME = 0.15
# Published dense bf16 tensor-core peak (FLOP/s) and HBM bandwidth (bytes/s).
DEVICES = {"H100 SXM": (989e12, 3.35e12), "H200": (989e12, 4.8e12)}
DECODES = ("point map + uncertainty", "disparity", "ray direction", "ray moment")


@dataclass
class Work:
    """FLOPs and bytes of one stage call."""

    flops: float = 0.0
    bytes: float = 0.0
    unfused_bytes: float = 0.0

    def scaled(self, factor: float) -> Work:
        return Work(self.flops * factor, self.bytes * factor, self.unfused_bytes * factor)

    def roofline_seconds(self, peak: float, bandwidth: float) -> float:
        return max(self.flops / peak, self.bytes / bandwidth)


def _tensor_bytes(values) -> int:
    return sum(
        leaf.numel() * leaf.element_size()
        for leaf in _pytree.tree_leaves(values)
        if isinstance(leaf, torch.Tensor)
    )


class _Traffic(TorchDispatchMode):
    """Reads plus writes of every op run (views excluded): those `flop_counter` (the mode below this one)
    counts FLOPs for in `counted`, all in `unfused`."""

    def __init__(self, flop_counter: FlopCounterMode) -> None:
        super().__init__()
        self.flop_counter = flop_counter
        self.counted = self.unfused = 0
        self.paused = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flops_before = self.flop_counter.get_total_flops()
        out = func(*args, **(kwargs or {}))
        if not self.paused and not func.is_view:
            moved = _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
            self.unfused += moved
            if self.flop_counter.get_total_flops() > flops_before:
                self.counted += moved
        return out


class _AttentionAsOneOp(TorchFunctionMode):
    """scaled_dot_product_attention as one fused op: q, k, v read and the output written once."""

    def __init__(self, traffic: _Traffic) -> None:
        super().__init__()
        self.traffic = traffic

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        self.traffic.paused += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self.traffic.paused -= 1
        moved = _tensor_bytes(args[:3]) + _tensor_bytes(out)
        self.traffic.counted += moved
        self.traffic.unfused += moved
        return out


@contextmanager
def counting(work: Work):
    """Add the FLOPs and bytes of everything run inside to `work`."""
    flop_counter = FlopCounterMode(display=False)
    traffic = _Traffic(flop_counter)
    with flop_counter, _AttentionAsOneOp(traffic), traffic, torch.inference_mode():
        yield
    work.flops += flop_counter.get_total_flops()
    work.bytes += traffic.counted
    work.unfused_bytes += traffic.unfused


def window_stage_work(
    config: NetworkConfig, width: int, height: int, dtype: torch.dtype, window_batch: int = 1
) -> dict[str, Work]:
    """Work of one call of each stage for `window_batch` windows of L frames, on the meta device: "encode
    (per frame)", "UNet (per DDIM step)" and each of DECODES (per frame), batches of L frames per VAE call."""
    model = random_network(config, device="meta", dtype=dtype)
    length, down = config.unet.temporal_length, config.vae.downsampling
    frames, latent = window_batch * length, (height // down, width // down)
    stages = {name: Work() for name in ("encode (per frame)", "UNet (per DDIM step)")}
    with counting(stages["encode (per frame)"]):
        model.vae.encode(torch.zeros(frames, 3, height, width, device="meta", dtype=dtype))
    x = torch.zeros(window_batch, config.unet.in_channels, length, *latent, device="meta", dtype=dtype)
    timesteps = torch.full((window_batch,), 999, device="meta")
    context = model.context.expand(window_batch, -1, -1)
    with counting(stages["UNet (per DDIM step)"]):
        model.unet(x, timesteps, context, torch.full((window_batch,), 24, device="meta"))
    z = torch.zeros(frames, config.vae.latent_channels, *latent, device="meta", dtype=dtype)
    point_map, decode = Work(), Work()
    with counting(point_map):
        model.pointmap_vae.decode_with_uncertainty(z)
    with counting(decode):
        model.vae.decode(z)
    stages["encode (per frame)"] = stages["encode (per frame)"].scaled(1 / frames)
    stages["UNet (per DDIM step)"] = stages["UNet (per DDIM step)"].scaled(1 / window_batch)
    stages[DECODES[0] + " (per frame)"] = point_map.scaled(1 / frames)
    for name in DECODES[1:]:
        stages[name + " (per frame)"] = decode.scaled(1 / frames)
    return stages


def per_output_frame(
    stages: dict[str, Work], length: int, stride: int, steps: int, encode_once: bool
) -> dict[str, Work]:
    """Each stage's work per output frame of a long clip (one window per `stride` frames)."""
    windows_per_frame = 1 / stride
    calls = {name: length * windows_per_frame for name in stages}  # per-frame stages: L frames per window
    calls["encode (per frame)"] = 1 if encode_once else length * windows_per_frame
    calls["UNet (per DDIM step)"] = steps * windows_per_frame
    return {name.split(" (")[0]: work.scaled(calls[name]) for name, work in stages.items()}


def roofline_table(per_frame: dict[str, Work]) -> dict[str, float]:
    """Seconds per output frame on each of DEVICES: the sum of the stages' roofline times."""
    return {
        device: sum(work.roofline_seconds(peak, bandwidth) for work in per_frame.values())
        for device, (peak, bandwidth) in DEVICES.items()
    }


def report(preset: str, width: int, height: int, stride: int, steps: int, window_batch: int) -> dict:
    """Everything flops.py prints, as one dictionary (benchmarks/gpu_check.py stores it in its report)."""
    config = NetworkConfig.preset(preset)
    steps = steps or config.sampling_steps
    length = config.unet.temporal_length
    stages = window_stage_work(config, width, height, torch.bfloat16, window_batch)
    before = per_output_frame(stages, length, stride, steps, encode_once=False)
    after = per_output_frame(stages, length, stride, steps, encode_once=True)
    return {
        "network": preset,
        "size": [width, height],
        "window_length": length,
        "stride": stride,
        "steps": steps,
        "window_batch": window_batch,
        "per_call": {name: asdict(work) for name, work in stages.items()},
        "per_frame_before": {name: asdict(work) for name, work in before.items()},
        "per_frame_after": {name: asdict(work) for name, work in after.items()},
        "roofline_s_per_frame_before": roofline_table(before),
        "roofline_s_per_frame_after": roofline_table(after),
        "paper_s_per_frame": PAPER_SECONDS_PER_FRAME,
        "goal_s_per_frame": GOAL_SECONDS_PER_FRAME,
    }


def print_report(found: dict) -> None:
    width, height = found["size"]
    print(
        f"`{found['network']}` network, {width}x{height}, windows of {found['window_length']} frames at stride "
        f"{found['stride']}, {found['steps']} DDIM steps, bf16, {found['window_batch']} window(s) per UNet call"
    )
    print(f"\n{'per call':<40} {'GFLOP':>10} {'GB moved':>9} {'GB unfused':>11}")
    for name, work in found["per_call"].items():
        print(
            f"  {name:<38} {work['flops'] / 1e9:>10.1f} {work['bytes'] / 1e9:>9.3f} {work['unfused_bytes'] / 1e9:>11.3f}"
        )
    header = "".join(f" {device + ' ms':>14}" for device in DEVICES)
    for label, key in (("before", "per_frame_before"), ("after", "per_frame_after")):
        print(
            f"\nper output frame, {label} (each frame encoded {'once' if label == 'after' else 'once per window'})"
        )
        print(f"  {'stage':<38} {'GFLOP':>10} {'GB moved':>9}{header}")
        total = Work()
        for name, work in found[key].items():
            work = Work(**work)
            total = Work(
                total.flops + work.flops, total.bytes + work.bytes, total.unfused_bytes + work.unfused_bytes
            )
            times = "".join(f" {1e3 * work.roofline_seconds(*DEVICES[d]):>14.2f}" for d in DEVICES)
            print(f"  {name:<38} {work.flops / 1e9:>10.1f} {work.bytes / 1e9:>9.3f}{times}")
        times = "".join(f" {1e3 * found['roofline_s_' + key][d]:>14.2f}" for d in DEVICES)
        print(f"  {'total':<38} {total.flops / 1e9:>10.1f} {total.bytes / 1e9:>9.3f}{times}")
    before, after = found["roofline_s_per_frame_before"], found["roofline_s_per_frame_after"]
    print(
        f"\nroofline seconds per frame (before -> after) beside the paper's {found['paper_s_per_frame']} s "
        f"and the goal of {found['goal_s_per_frame']} s:"
    )
    for device in DEVICES:
        print(
            f"  {device:<9} {before[device]:.4f} -> {after[device]:.4f} s "
            f"({found['paper_s_per_frame'] / after[device]:.0f}x under the paper's time)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="full", choices=["full", "small", "tiny"], help="network size (default full)"
    )
    parser.add_argument("--size", default="512x320", help="WIDTHxHEIGHT network input (default 512x320)")
    parser.add_argument("--stride", type=int, default=4, help="frames between window starts (default 4)")
    parser.add_argument("--steps", type=int, default=0, help="DDIM steps (0 = the network's own)")
    parser.add_argument("--window-batch", type=int, default=1, help="windows per UNet call (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    found = report(args.preset, width, height, args.stride, args.steps, args.window_batch)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print_report(found)


if __name__ == "__main__":
    main()

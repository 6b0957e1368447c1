"""Alignment benchmark: seconds, peak memory and accuracy of core.align on simulated predictions.

`python benchmarks/align.py` runs case (a), 24 frames at 32x48 (3 windows), and case (b), 120 frames at
320x512 with stride 4 (27 windows); `--case long` aligns 1,000 frames at 32x48 (247 windows).
Predictions are simulated from synthetic ground truth with the test noise (core.simulated_predictions).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from geo4d.core.align import AlignConfig, align_windows
from geo4d.core.metrics import camera_metrics, depth_metrics
from geo4d.core.simulated_predictions import PredictionNoise, simulate_window_predictions
from geo4d.core.synthetic import SceneConfig, render_scene
from geo4d.core.windows import plan_windows

CASES = {
    "a": SceneConfig(frames=24, width=48, height=32, seed=0),
    "b": SceneConfig(frames=120, width=512, height=320, seed=0),
    "long": SceneConfig(frames=1000, width=48, height=32, seed=0),
}


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def run_case(name: str, device: str, repeats: int) -> None:
    scene = CASES[name]
    truth = render_scene(scene)
    plan = plan_windows(scene.frames)
    predictions = simulate_window_predictions(truth, plan, PredictionNoise(), seed=1)
    predictions = [p.__class__(**{k: v.to(device) for k, v in vars(p).items()}) for p in predictions]
    before = peak_memory_gb()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = align_windows(predictions, truth.color, AlignConfig())
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    cameras = camera_metrics(result.camera_to_world, truth.camera_to_world)
    depth = depth_metrics(result.depth, truth.depth)
    focal_error = result.intrinsics.fx / truth.intrinsics.fx - 1
    print(
        f"case {name}: {scene.frames} frames at {scene.height}x{scene.width}, {plan.num_windows} windows, {device}"
    )
    print(f"  align seconds: best {min(seconds):.3f}, all {', '.join(f'{s:.3f}' for s in seconds)}")
    print(f"  peak memory: {peak_memory_gb():.2f} GB (process; {before:.2f} GB before aligning)")
    if device.startswith("cuda"):
        print(f"  peak CUDA memory: {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")
    print(
        f"  focal error {100 * focal_error:+.3f} %, ATE {100 * cameras.ate / cameras.path_length:.3f} % of path, "
        f"RPE-t {cameras.rpe_translation:.5f}, RPE-rot {cameras.rpe_rotation_deg:.4f} deg, "
        f"AbsRel {depth.abs_rel:.4f}, delta<1.25 {100 * depth.delta_1_25:.2f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", choices=[*CASES, "all"], default="all", help="which case to run (all = a and b)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (the best is quoted)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("a", "b") if args.case == "all" else (args.case,):
        run_case(name, args.device, args.repeats if name == "a" else 1)


if __name__ == "__main__":
    main()

"""Alignment benchmark: accuracy, seconds (wall and CPU) and peak memory of core.align, beside an earlier aligner.

`python benchmarks/align.py` prints, in one run, for this aligner and the one at --baseline (default: the
revision before the handheld/ray-focal work, read from git into a temporary package, so both run in
this process on the same inputs):
- targets: 48-frame 96x160 scenes, stride 4, rays with a per-window focal error uniform in +-10 %,
  0.5 deg ray noise, 1 % depth noise and 5 % outliers, over --seeds seeds (worst and mean): orbiting
  camera, handheld camera (ATE and the largest frame-to-frame rotation error too), exact-focal rays,
  and a garbage window (is it reported?);
- case (a), 24 frames at 32x48 (3 windows), and case (b), 120 frames at 320x512 with stride 4 (27
  windows), each aligner in a fresh process of its own so that its peak memory is its own;
  `--case long` aligns 1,000 frames at 32x48 (247 windows).
Predictions are simulated from synthetic ground truth (core.synthetic.simulated_predictions).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import io
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geo4d.core.align import align_windows
from geo4d.core.evaluation.metrics import camera_metrics, depth_metrics, rotation_angle_deg
from geo4d.core.synthetic.render import SceneConfig, render_scene
from geo4d.core.synthetic.simulated_predictions import PredictionNoise, simulate_window_predictions
from geo4d.core.windows import plan_windows

# The aligner before per-window ray-focal errors, ray moments and handheld motion were handled.
BASELINE_REVISION = "fe505cf3c6d7e662c06370c44652ce62d77cc3b9"
REPOSITORY = Path(__file__).resolve().parent.parent
CASES = {
    "a": SceneConfig(frames=24, width=48, height=32, seed=0),
    "b": SceneConfig(frames=120, width=512, height=320, seed=0),
    "long": SceneConfig(frames=1000, width=48, height=32, seed=0),
}
TARGET_NOISE = PredictionNoise(
    point_noise=0.01, outlier_fraction=0.05, ray_angle_deg=0.5, ray_focal_spread=0.1
)
EXACT_RAYS = PredictionNoise(point_noise=0.01, outlier_fraction=0.05, ray_angle_deg=0.5)
GARBAGE_WINDOW = 4


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def load_baseline(revision: str):
    """align_windows of `revision`'s core package, extracted from git into a temporary package."""
    folder = Path(tempfile.mkdtemp(prefix="geo4d-align-baseline-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    package = folder / "geo4d_baseline"
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", revision, "core"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(package, filter="data")
    (package / "__init__.py").write_text('"""An earlier geo4d core, for comparison."""\n')
    sys.path.insert(0, str(folder))
    return importlib.import_module("geo4d_baseline.core.align").align_windows


@dataclass
class Run:
    """One aligner on one input: accuracy, seconds and warnings."""

    focal: float
    ate: float
    rpe_rot: float
    abs_rel: float
    worst_step_deg: float
    wall: float
    cpu: float
    warnings: list[str]


def measure(aligner, predictions, truth) -> Run:
    wall, cpu = time.perf_counter(), time.process_time()
    result = aligner(predictions, truth.color)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cameras = camera_metrics(result.camera_to_world, truth.camera_to_world)
    steps = [np.linalg.inv(c[:-1]) @ c[1:] for c in (truth.camera_to_world, result.camera_to_world)]
    step_error = rotation_angle_deg(np.linalg.inv(steps[0][:, :3, :3]) @ steps[1][:, :3, :3])
    return Run(
        focal=abs(result.intrinsics.fx / truth.intrinsics.fx - 1),
        ate=cameras.ate / cameras.path_length,
        rpe_rot=cameras.rpe_rotation_deg,
        abs_rel=depth_metrics(result.depth, truth.depth).abs_rel,
        worst_step_deg=float(step_error.max()),
        wall=wall,
        cpu=cpu,
        warnings=list(result.warnings),
    )


def target_runs(aligners: dict, motion: str, noise: PredictionNoise, seeds: int) -> dict[str, list[Run]]:
    runs = {name: [] for name in aligners}
    for seed in range(seeds):
        truth = render_scene(SceneConfig(frames=48, width=160, height=96, seed=seed, motion=motion))
        predictions = simulate_window_predictions(truth, plan_windows(48, stride=4), noise, seed=seed + 1)
        for name, aligner in aligners.items():
            runs[name].append(measure(aligner, predictions, truth))
    return runs


def print_targets(title: str, runs: dict[str, list[Run]], rows) -> None:
    print(title)
    names = list(runs)
    print(f"  {'':34s}" + "".join(f"{name:>28s}" for name in names))
    for label, field, scale, target in rows:
        cells = []
        for name in names:
            values = np.array([getattr(run, field) for run in runs[name]]) * scale
            cells.append(f"worst {values.max():7.3f} mean {values.mean():6.3f}")
        print(f"  {label:34s}" + "".join(f"{cell:>28s}" for cell in cells) + f"   target {target}")
    for name in names:
        wall = sum(run.wall for run in runs[name])
        cpu = sum(run.cpu for run in runs[name])
        print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU over {len(runs[name])} alignments")


ACCURACY_ROWS = (
    ("focal error %", "focal", 100, "< 1"),
    ("ATE % of path", "ate", 100, "< 1"),
    ("RPE rotation deg", "rpe_rot", 1, "< 0.2"),
    ("AbsRel", "abs_rel", 1, "< 0.02"),
    ("largest frame-to-frame error deg", "worst_step_deg", 1, "-"),
)
HANDHELD_ROWS = (
    ("focal error %", "focal", 100, "-"),
    ("ATE % of path", "ate", 100, "< 2"),
    ("RPE rotation deg", "rpe_rot", 1, "-"),
    ("AbsRel", "abs_rel", 1, "-"),
    ("largest frame-to-frame error deg", "worst_step_deg", 1, "< 5"),
)


def run_targets(aligners: dict, seeds: int) -> None:
    print(f"targets: 48 frames at 96x160, stride 4, {seeds} seeds, torch threads {torch.get_num_threads()}")
    print_targets(
        "ray focal +-10 %, 0.5 deg rays, 1 % depth, 5 % outliers (orbit)",
        target_runs(aligners, "orbit", TARGET_NOISE, seeds),
        ACCURACY_ROWS,
    )
    print_targets(
        "the same noise, handheld camera",
        target_runs(aligners, "handheld", TARGET_NOISE, seeds),
        HANDHELD_ROWS,
    )
    print_targets(
        "exact-focal rays (orbit)", target_runs(aligners, "orbit", EXACT_RAYS, seeds), ACCURACY_ROWS
    )
    garbage = PredictionNoise(**{**vars(TARGET_NOISE), "garbage_windows": (GARBAGE_WINDOW,)})
    runs = target_runs(aligners, "orbit", garbage, seeds)
    print_targets(f"window {GARBAGE_WINDOW} replaced by noise (orbit)", runs, ACCURACY_ROWS)
    for name, name_runs in runs.items():
        found = sum(any(w.startswith(f"Window {GARBAGE_WINDOW} ") for w in run.warnings) for run in name_runs)
        print(f"  {name}: the garbage window reported in {found} of {len(name_runs)} runs")


def run_case(name: str, label: str, aligner, repeats: int, device: str) -> None:
    """One aligner on one case: best seconds (wall, CPU), peak memory and accuracy."""
    scene = CASES[name]
    truth = render_scene(scene)
    plan = plan_windows(scene.frames)
    predictions = simulate_window_predictions(truth, plan, PredictionNoise(), seed=1)
    predictions = [p.__class__(**{k: v.to(device) for k, v in vars(p).items()}) for p in predictions]
    before = peak_memory_gb()
    runs = [measure(aligner, predictions, truth) for _ in range(repeats)]
    run = runs[-1]
    print(
        f"  {label:>8s}: best {min(r.wall for r in runs):.2f} s wall, {min(r.cpu for r in runs):.2f} s CPU; "
        f"peak memory {peak_memory_gb():.2f} GB ({before:.2f} GB before aligning); focal error "
        f"{100 * run.focal:.3f} %, ATE {100 * run.ate:.3f} % of path, RPE-rot {run.rpe_rot:.4f} deg, "
        f"AbsRel {run.abs_rel:.4f}"
    )
    if device.startswith("cuda"):
        print(f"  {label:>8s}: peak CUDA memory {torch.cuda.max_memory_allocated() / 1e9:.2f} GB")


def run_case_apart(name: str, labels: list[str], args) -> None:
    """Each aligner on a case in a fresh process of this script, so that each peak memory is its own
    (a forked process can hang in torch's thread pool)."""
    scene = CASES[name]
    print(f"case {name}: {scene.frames} frames at {scene.height}x{scene.width}, test noise, {args.device}")
    for label in labels:
        command = [sys.executable, __file__, "--case", name, "--only", label, "--baseline", args.baseline]
        command += ["--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats)]
        subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        choices=[*CASES, "targets", "all"],
        default="all",
        help="what to run (all = targets, a and b)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="scenes per target figure (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of case a (the best is quoted)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument(
        "--device", default="cpu", help="torch device of cases a, b and long, e.g. cpu or cuda"
    )
    parser.add_argument("--only", choices=("earlier", "new"), help="run one aligner on one case, here")
    parser.add_argument(
        "--baseline",
        default=BASELINE_REVISION,
        help="git revision of the aligner to compare with ('none' to skip; default: the earlier aligner)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    aligners = {"new": align_windows}
    if args.baseline != "none":
        aligners = {"earlier": load_baseline(args.baseline), **aligners}
    if args.only:
        run_case(
            args.case, args.only, aligners[args.only], args.repeats if args.case == "a" else 1, args.device
        )
        return
    names = ("targets", "a", "b") if args.case == "all" else (args.case,)
    for name in names:
        if name == "targets":
            run_targets(aligners, args.seeds)
        else:
            run_case_apart(name, list(aligners), args)


if __name__ == "__main__":
    main()

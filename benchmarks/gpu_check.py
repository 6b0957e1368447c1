"""One GPU check in one JSON report: the gpu tests, the full network's speed and memory, its roofline
efficiency, the aligner on the GPU against the CPU, and a reconstruction end to end.

Run it through benchmarks/gpu_check.sh (about 8 minutes on one H100 or H200):
- gpu_tests: `pytest -m gpu` over the test files that hold gpu-marked tests (counts from its JUnit XML);
- network: the `full` network with random weights in bf16 at 512x320, the reconstruction's own window
  predictor (each frame encoded once, the network's own 5 DDIM steps, decode_batch 8) over a clip of 8
  windows at stride 4, for 1, 2, 4 and 8 windows per UNet call: seconds per window, per frame (per window
  / stride: one window per `stride` frames of a long clip) and peak memory, after one warm-up call (GPU);
- roofline: benchmarks/flops.py's count for the same network, and the efficiency, roofline seconds per
  frame over the best measured seconds per frame (on an H100 or H200 only);
- aligner: core.align on simulated predictions of a 120-frame 512x320 synthetic scene at stride 4, on the
  CPU and on the GPU (seconds, and how far apart their cameras are);
- reconstruction: a 120-frame synthetic video reconstructed end to end with the random full network
  (the stage timings of the result; its geometry means nothing with random weights).
`--dry-run` runs every part on the CPU at `tiny` size (float32, 128x64, fewer windows and frames), so that
CI keeps the check working. A part that fails records its error and the others still run; the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch
from flops import DEVICES
from flops import report as flops_report

from geo4d.core.align import align_windows
from geo4d.core.errors import Geo4DError
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network
from geo4d.core.network.window_pipeline import WindowPipeline
from geo4d.core.network.window_predictor import WindowPredictor
from geo4d.core.output_folder import check_json_report, write_json_report
from geo4d.core.prediction import WindowPrediction
from geo4d.core.progress import Reporter
from geo4d.core.reconstruction import reconstruct
from geo4d.core.settings import ReconstructionSettings
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, render_scene, write_synthetic
from geo4d.core.synthetic.simulated_predictions import PredictionNoise, simulate_window_predictions
from geo4d.core.windows import plan_windows

REPOSITORY = Path(__file__).resolve().parent.parent
# The report's marker: a file at --output is replaced only when it carries it.
REPORT_FORMAT = "geo4d-gpu-check"
REPORT_KIND = "GPU check report"
STRIDE = 4


@dataclass(frozen=True)
class CheckSize:
    """How big each part of the check is."""

    preset: str
    size: tuple[int, int]  # network input (W, H)
    dtype: torch.dtype
    window_batches: tuple[int, ...]
    windows: int  # windows of the timed clip
    align_scene: SceneConfig
    reconstruction_frames: int


FULL = CheckSize("full", (512, 320), torch.bfloat16, (1, 2, 4, 8), 8, SceneConfig(120, 512, 320, seed=0), 120)
DRY_RUN = CheckSize("tiny", (128, 64), torch.float32, (1, 2), 2, SceneConfig(24, 48, 32, seed=0), 24)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated since the last reset, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def gpu_tests() -> dict:
    """`pytest -m gpu` over the files holding gpu-marked tests: their counts, exit status and output tail."""
    files = sorted(
        str(path.relative_to(REPOSITORY))
        for path in (REPOSITORY / "tests").rglob("test_*.py")
        if "pytest.mark.gpu" in path.read_text()
    )
    with tempfile.TemporaryDirectory() as folder:
        junit = Path(folder) / "gpu.xml"
        started = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "gpu",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
        ]
        completed = subprocess.run(command + files, cwd=REPOSITORY, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        root = ElementTree.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {
        "files": files,
        "returncode": completed.returncode,
        **counts,
        "seconds": round(seconds, 2),
        "output_tail": (completed.stdout + completed.stderr)[-2000:],
    }


def network_speed(model: WindowPipeline, check: CheckSize) -> dict:
    """Seconds per window and per frame, and peak memory, of the window predictor for each window batch."""
    width, height = check.size
    length = model.config.unet.temporal_length
    frames = np.random.default_rng(0).integers(
        0, 256, size=(length + STRIDE * (check.windows - 1), height, width, 3), dtype=np.uint8
    )
    plan = plan_windows(len(frames), length, STRIDE)
    runs, steps = [], 0
    for batch in check.window_batches:
        predictor = WindowPredictor(
            model, ReconstructionSettings(window_batch=batch, device=model.device.type)
        )
        if model.device.type == "cuda":  # kernels chosen and loaded for this batch before the timed run
            warm_up = plan_windows(length + STRIDE * (min(batch, plan.num_windows) - 1), length, STRIDE)
            predictor.predict(frames[: warm_up.num_frames], 24.0, warm_up, Reporter())
            torch.cuda.reset_peak_memory_stats(model.device)
        synchronize(model.device)
        started = time.perf_counter()
        predictions, used = predictor.predict(frames, 24.0, plan, Reporter())
        synchronize(model.device)
        seconds = time.perf_counter() - started
        del predictions
        steps = predictor.steps
        runs.append(
            {
                "window_batch": batch,
                "window_batch_used": used,
                "windows": plan.num_windows,
                "frames": plan.num_frames,
                "seconds": round(seconds, 4),
                "s_per_window": round(seconds / plan.num_windows, 4),
                "s_per_frame": round(seconds / plan.num_windows / STRIDE, 4),
                "peak_memory_gb": round(peak_memory_gb(model.device), 3),
            }
        )
    return {"steps": steps, "stride": STRIDE, "decode_batch": 8, "runs": runs}


def roofline(check: CheckSize, device_name: str, speed: dict | None) -> dict:
    """flops.py's figures for this network, and the efficiency on an H100 or H200 (None elsewhere)."""
    width, height = check.size
    found = flops_report(check.preset, width, height, STRIDE, 0, 1)
    chip = next((chip for chip in DEVICES if chip.split()[0] in device_name), None)
    measured = min(run["s_per_frame"] for run in speed["runs"]) if speed else None
    efficiency = None
    if chip is not None and measured:
        efficiency = round(found["roofline_s_per_frame_after"][chip] / measured, 4)
    return {
        "chip": chip,
        "flops_per_frame": sum(work["flops"] for work in found["per_frame_after"].values()),
        "bytes_per_frame": sum(work["bytes"] for work in found["per_frame_after"].values()),
        "roofline_s_per_frame": found["roofline_s_per_frame_after"],
        "measured_s_per_frame": measured,
        "efficiency": efficiency,
        "paper_s_per_frame": found["paper_s_per_frame"],
        "goal_s_per_frame": found["goal_s_per_frame"],
    }


def aligner(check: CheckSize) -> dict:
    """core.align on the CPU and (when there is one) the GPU, on the same simulated predictions."""
    truth = render_scene(check.align_scene)
    predictions = simulate_window_predictions(
        truth, plan_windows(truth.num_frames), PredictionNoise(), seed=1
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    found, results = {}, {}
    for device in devices:
        moved = [WindowPrediction(**{k: v.to(device) for k, v in vars(p).items()}) for p in predictions]
        synchronize(torch.device(device))
        started = time.perf_counter()
        results[device] = align_windows(moved, truth.color)
        synchronize(torch.device(device))
        found[f"{device}_s"] = round(time.perf_counter() - started, 3)
    found["frames"], found["size"] = truth.num_frames, [check.align_scene.width, check.align_scene.height]
    if "cuda" in results:
        found["gpu_speedup"] = round(found["cpu_s"] / found["cuda_s"], 2)
        difference = np.abs(results["cuda"].camera_to_world - results["cpu"].camera_to_world).max()
        found["max_camera_difference"] = float(difference)
    return found


def reconstruction(model: WindowPipeline, check: CheckSize) -> dict:
    """A synthetic video of check.reconstruction_frames frames reconstructed end to end."""
    width, height = check.size
    with tempfile.TemporaryDirectory() as folder:
        scene = SceneConfig(frames=check.reconstruction_frames, width=width, height=height, seed=3)
        video = write_synthetic(Path(folder) / "scene", scene) / VIDEO_NAME
        settings = ReconstructionSettings(device=model.device.type, size=check.size)
        result = reconstruct(video, model, settings)
    return {
        "frames": result.num_frames,
        "windows": result.settings["windows"],
        "window_batch": result.settings["window_batch"],
        "timings": result.timings,
        "s_per_frame": round(result.timings["total_s"] / result.num_frames, 4),
        "finite": bool(np.isfinite(result.depth).all() and np.isfinite(result.camera_to_world).all()),
    }


def run_check(dry_run: bool) -> dict:
    """Every part of the check; a part that raises records its traceback under "errors"."""
    check = DRY_RUN if dry_run else FULL
    device = torch.device("cpu" if dry_run else "cuda")
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    )
    started = time.perf_counter()
    report: dict = {
        "dry_run": dry_run,
        "device": str(device),
        "device_name": device_name,
        "torch": torch.__version__,
        "preset": check.preset,
        "size": list(check.size),
        "dtype": str(check.dtype).removeprefix("torch."),
        "errors": {},
    }
    model = random_network(NetworkConfig.preset(check.preset), seed=0, device=device, dtype=check.dtype)
    parts = {
        "gpu_tests": gpu_tests,
        "network": lambda: network_speed(model, check),
        "roofline": lambda: roofline(check, device_name, report.get("network")),
        "aligner": lambda: aligner(check),
        "reconstruction": lambda: reconstruction(model, check),
    }
    for name, part in parts.items():
        part_started = time.perf_counter()
        try:
            report[name] = part()
        except (
            Exception
        ):  # recorded in the report, which then exits 1: one failing part must not hide the rest
            report[name] = None
            report["errors"][name] = traceback.format_exc()[-4000:]
        print(f"{name}: {time.perf_counter() - part_started:.1f} s", file=sys.stderr, flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU at tiny size (CI)")
    parser.add_argument(
        "--output",
        default="gpu_check.json",
        help="the JSON report's path (default gpu_check.json); an existing file is replaced only when it is "
        "an earlier report of this check",
    )
    args = parser.parse_args()
    try:
        check_json_report(args.output, REPORT_FORMAT, REPORT_KIND)  # before minutes of work
    except Geo4DError as error:
        print(f"gpu_check: error: {error}", file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device is visible to torch; run on a GPU machine, or use --dry-run.",
            file=sys.stderr,
        )
        return 2
    report = {"format": REPORT_FORMAT, **run_check(args.dry_run)}
    try:
        write_json_report(args.output, report, REPORT_KIND)
    except Geo4DError as error:
        print(f"gpu_check: error: {error}", file=sys.stderr)
        return 1
    print(
        f"gpu_check: report written to {args.output} ({len(report['errors'])} part(s) failed)",
        file=sys.stderr,
    )
    return 1 if report["errors"] or (report["gpu_tests"] or {}).get("returncode", 1) not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark evaluation: reconstruct each sequence of a dataset, score it by the paper's protocol, write a report.

Depth: the ground truth is sampled (nearest pixel) at the result's own pixels through the frame mapping the
pipeline used to scale and crop the frames, then scored with one L1 scale and shift per sequence, capped at
the dataset's maximum depth; averages are weighted by valid pixels. Pose: Sim(3) Umeyama alignment over the
frames with a ground-truth pose, RPE between consecutive such frames; averages are means over sequences.
Each sequence's result folder is kept under the report folder, so a rerun only scores what is done.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..camera import pixel_centre
from ..errors import Geo4DError
from ..output_folder import (
    RESULT_LAYOUT,
    check_output_file,
    check_output_folder,
    protected_reason,
    write_file,
)
from ..progress import CancelCheck, ProgressCallback, ProgressEvent, Reporter
from ..result import JSON_NAME, Reconstruction
from .datasets import BenchmarkSequence, get_dataset, load_benchmark
from .metrics import camera_metrics, depth_metrics

if TYPE_CHECKING:
    from ..reconstruction import ReconstructionSettings

logger = logging.getLogger(__name__)

SEQUENCES_DIR = "sequences"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
# Points per frame in the cached results' PLY files: enough to look at one in Blender, small on disk.
CACHED_POINTS_PER_FRAME = 20_000
# Settings that change a reconstruction: a cached result made with others is not reused.
RESULT_KEYS = ("stride", "steps", "seed", "size")
DEPTH_METRICS = ("abs_rel", "delta_1_25")
POSE_METRICS = ("ate", "rpe_translation", "rpe_rotation_deg")
# Geo4D's published figures (ICCV 2025), by (dataset, task).
PUBLISHED = {
    ("sintel", "depth"): {"abs_rel": 0.205, "delta_1_25": 0.735},
    ("bonn", "depth"): {"abs_rel": 0.059, "delta_1_25": 0.972},
    ("kitti", "depth"): {"abs_rel": 0.086, "delta_1_25": 0.937},
    ("sintel", "pose"): {"ate": 0.185, "rpe_translation": 0.063, "rpe_rotation_deg": 0.547},
    ("tum", "pose"): {"ate": 0.073, "rpe_translation": 0.020, "rpe_rotation_deg": 0.635},
}


def truth_depth_at_result(
    sequence: BenchmarkSequence, result: Reconstruction
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth depth float32 [T, h, w] and valid mask bool [T, h, w] at the result's frames and pixels.

    Each result pixel centre is mapped back to the source frame (settings "frame_mapping": scale, then centre
    crop) and from there to the depth map, whose size may differ from the frames' (ScanNet); the nearest
    depth pixel is taken, so no depth is ever blended across an edge.
    """
    mapping = result.settings.get("frame_mapping")
    if mapping is None:
        raise Geo4DError("The result records no frame mapping; delete it and evaluate again.")
    depth, valid = sequence.read_depth()
    depth_height, depth_width = depth.shape[1:]
    u = (pixel_centre(np.arange(result.width)) + mapping["crop_left"]) / mapping["scale_x"]
    v = (pixel_centre(np.arange(result.height)) + mapping["crop_top"]) / mapping["scale_y"]
    cols = np.clip(np.floor(u * depth_width / mapping["source_width"]).astype(np.int64), 0, depth_width - 1)
    rows = np.clip(
        np.floor(v * depth_height / mapping["source_height"]).astype(np.int64), 0, depth_height - 1
    )
    frames = result.source_frames[:, None, None]
    return depth[frames, rows[:, None], cols[None, :]], valid[frames, rows[:, None], cols[None, :]]


def score_sequence(sequence: BenchmarkSequence, result: Reconstruction, task: str) -> dict:
    """The protocol's figures of one reconstructed sequence for `task` ("depth" or "pose"), as a report row."""
    row: dict = {"name": sequence.name, "frames": result.num_frames}
    if task == "depth":
        truth, valid = truth_depth_at_result(sequence, result)
        metrics = depth_metrics(result.depth, truth, valid, "scale_shift", sequence.max_depth)
        row.update(asdict(metrics))
        return row
    truth = sequence.camera_to_world[result.source_frames]
    known = sequence.pose_valid[result.source_frames]
    row["frames_with_pose"] = int(known.sum())
    if known.sum() < 2:
        row["note"] = "skipped: fewer than two frames have a ground-truth pose"
        return row
    row.update(asdict(camera_metrics(result.camera_to_world, truth, known)))
    return row


def averages(rows: list[dict], task: str) -> dict:
    """Depth: means weighted by each sequence's valid pixels; pose: plain means over scored sequences."""
    names = DEPTH_METRICS if task == "depth" else POSE_METRICS
    scored = [row for row in rows if names[0] in row]
    if not scored:
        return {"sequences": 0}
    weights = np.array([row["pixels"] if task == "depth" else 1.0 for row in scored], dtype=np.float64)
    summary = {name: float(np.average([row[name] for row in scored], weights=weights)) for name in names}
    summary["sequences"] = len(scored)
    if task == "depth":
        summary["pixels"] = int(weights.sum())
    return summary


def evaluate(
    dataset: str,
    root: str | Path,
    output: str | Path,
    model: str | Path,
    settings: ReconstructionSettings | None = None,
    task: str | None = None,
    sequences: Sequence[str] | None = None,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> dict:
    """Run the benchmark `dataset` at `root` with `model` and write the report folder `output`.

    settings: a ReconstructionSettings (its size None = the dataset's model input size); task: "depth" or
    "pose" (None = the dataset's first); sequences: only these; limit: only the first `limit` sequences.
    Progress has one stage, "evaluate", counting sequences. Returns the content of results.json.
    """
    spec = get_dataset(dataset)
    task = spec.tasks[0] if task is None else task
    if limit is not None and limit < 1:
        raise Geo4DError(f"--limit {limit} leaves no sequence to evaluate; give 1 or more.")
    chosen = load_benchmark(spec.name, root, task, sequences)[:limit]
    output = Path(output)
    _check_report_folder(output, root, chosen)
    from ..reconstruction import (  # torch: after the checks
        ReconstructionSettings,
        load_model,
        reconstruct_frames,
    )

    settings = settings or ReconstructionSettings()
    if settings.size is None:
        settings = replace(settings, size=spec.input_size)
    wanted = {key: _jsonable(getattr(settings, key)) for key in RESULT_KEYS}
    reporter = Reporter(progress, cancel)
    loaded = None
    rows = []
    for index, sequence in enumerate(chosen):
        reporter.report("evaluate", index, len(chosen), sequence.name)
        folder = output / SEQUENCES_DIR / sequence.name
        if (folder / JSON_NAME).is_file():
            result = Reconstruction.load(folder)
            _check_cached(folder, result, str(model), wanted)
        else:
            if loaded is None:  # only when a sequence needs it: a finished report reruns without the model
                loaded = load_model(model, settings.device, settings.precision)
                settings.check_model(loaded)  # before the first sequence's frames are read
            result = reconstruct_frames(
                sequence.read_frames(),
                sequence.fps,
                loaded,
                settings,
                _per_sequence(progress, reporter, index, len(chosen), sequence.name),
                cancel,
            )
            result.settings["model"] = str(model)
            result.source_video = str(sequence.frame_files[0].parent)
            result.save(folder, max_points_per_frame=CACHED_POINTS_PER_FRAME)
        rows.append({**score_sequence(sequence, result, task), "seconds": result.timings.get("total_s")})
    reporter.report("evaluate", len(chosen), len(chosen), "done")
    report = {
        "dataset": spec.name,
        "title": spec.title,
        "task": task,
        "root": str(Path(root)),
        "model": str(model),
        "settings": {key: _jsonable(value) for key, value in asdict(settings).items()},
        "max_depth": spec.max_depth if task == "depth" else None,
        "average": averages(rows, task),
        "published": PUBLISHED.get((spec.name, task)),
        "sequences": rows,
    }
    _write_text(output / RESULTS_JSON, json.dumps(report, indent=1), output)
    _write_text(output / RESULTS_MD, markdown_report(report), output)
    return report


def _check_report_folder(output: Path, root: str | Path, chosen: Sequence[BenchmarkSequence]) -> None:
    """core.output_folder's contract for a report folder, before any work: never the current folder, the
    dataset or a folder above them; each sequence folder to write new or empty (a cached result of ours is
    only read); results.json and results.md replaced only when they are an earlier report of ours. A
    user's other files in the report folder are left alone: evaluation never deletes anything."""
    reason = protected_reason(output, [root])
    if reason is not None:
        raise Geo4DError(
            f"The report folder {output} {reason}: Geo4D never writes into such a folder. "
            "Choose a new folder for the report."
        )
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise Geo4DError(f"{output} is a file or a link, not a folder. Choose a new folder for the report.")
    for sequence in chosen:
        folder = output / SEQUENCES_DIR / sequence.name
        if folder.is_symlink() or not folder.is_dir() or isinstance(RESULT_LAYOUT.marker(folder), str):
            check_output_folder(folder, RESULT_LAYOUT, [root])
    for name in (RESULTS_JSON, RESULTS_MD):
        check_output_file(output / name, lambda _: _is_report(output), "report", [root])


def _is_report(output: Path) -> bool:
    """Whether output/results.json is a report evaluate() wrote (results.md goes with it)."""
    try:
        report = json.loads((output / RESULTS_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(report, dict) and {"dataset", "task", "sequences", "average"} <= report.keys()


def _check_cached(folder: Path, result: Reconstruction, model: str, wanted: dict) -> None:
    """A cached result is reused only if the same model and settings made it."""
    made = result.settings.get("reconstruction", {})
    found = {key: made.get(key) for key in RESULT_KEYS}
    if result.settings.get("model") != model or found != wanted:
        raise Geo4DError(
            f"{folder} was reconstructed with model {result.settings.get('model')!r} and {found}, not "
            f"{model!r} and {wanted}. Write the report to another folder, or delete that one to redo it."
        )


def _per_sequence(
    progress: ProgressCallback | None, reporter: Reporter, index: int, total: int, name: str
) -> ProgressCallback | None:
    """The pipeline's events of one sequence shown on the sequence bar: its stage goes in the message."""
    if progress is None:
        return None

    def forward(event: ProgressEvent) -> None:
        detail = f"{event.stage} {event.done}/{event.total}" + (f" {event.message}" if event.message else "")
        elapsed = time.perf_counter() - reporter.started
        progress(ProgressEvent("evaluate", index, total, elapsed, f"{name}: {detail}"))

    return forward


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def _write_text(path: Path, text: str, output: Path) -> None:
    """Write a report file whole or not at all (a hidden file renamed over it), checked as before the work."""
    output.mkdir(parents=True, exist_ok=True)
    write_file(
        path,
        lambda partial: partial.write_text(text, encoding="utf-8"),
        lambda _: _is_report(output),
        "report",
    )


def _figure(name: str, value: float | None) -> str:
    if value is None:
        return "—"
    if name == "delta_1_25":
        return f"{100 * value:.1f} %"
    if name == "rpe_rotation_deg":
        return f"{value:.3f}°"
    return f"{value:.3f}"


def markdown_report(report: dict) -> str:
    """results.md: the averages beside Geo4D's published figures, then one row per sequence."""
    task = report["task"]
    names = DEPTH_METRICS if task == "depth" else POSE_METRICS
    headers = {
        "abs_rel": "AbsRel ↓",
        "delta_1_25": "δ<1.25 ↑",
        "ate": "ATE ↓",
        "rpe_translation": "RPE trans ↓",
        "rpe_rotation_deg": "RPE rot ↓",
    }
    average, published = report["average"], report["published"] or {}
    cap = f", depth capped at {report['max_depth']:g} m" if report["max_depth"] else ""
    lines = [
        f"# {report['title']} {task} benchmark",
        "",
        f"Model `{report['model']}`, {average['sequences']} of {len(report['sequences'])} sequences scored"
        f"{cap}. Protocol: "
        + (
            "per-sequence L1 scale and shift in depth space, mean weighted by valid pixels."
            if task == "depth"
            else "Sim(3) Umeyama alignment, RPE over consecutive frames, mean over sequences."
        ),
        "",
        "| | " + " | ".join(headers[name] for name in names) + " |",
        "|---|" + "---|" * len(names),
        "| This run | " + " | ".join(_figure(name, average.get(name)) for name in names) + " |",
        "| Geo4D (paper) | " + " | ".join(_figure(name, published.get(name)) for name in names) + " |",
        "",
        "| Sequence | Frames | " + " | ".join(headers[name] for name in names) + " | Note |",
        "|---|---|" + "---|" * (len(names) + 1),
    ]
    for row in report["sequences"]:
        figures = " | ".join(_figure(name, row.get(name)) for name in names)
        lines.append(f"| {row['name']} | {row['frames']} | {figures} | {row.get('note', '')} |")
    return "\n".join(lines) + "\n"

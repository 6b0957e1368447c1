"""The worker process (`python -m geo4d.core.worker`): runs one job and speaks JSON lines with its parent.

Protocol (all UTF-8 JSON, one object per line):
    parent -> worker, stdin:  first line the job, then optionally {"type": "cancel"}; closing stdin
                              (the parent went away) cancels too.
    worker -> parent, stdout: {"type": "started", "pid", "kind", "module_file"}, then {"type": "progress", "stage", "done",
                              "total", "elapsed", "message"} events, and one final event: {"type": "done",
                              ...}, {"type": "error", "message"} or {"type": "cancelled", "message"}.
Jobs:
    {"kind": "reconstruct", "video", "output", "model", "settings": {ReconstructionSettings fields}, "ray"}
        runs core.pipeline.reconstruct_to_folder; "done" carries "output" and a "summary" of the result.
        With a "ray" address (optional) the windows run on that Ray cluster and this process is its driver;
        "ray_actors" (optional) sets the copies of the model (default: one per GPU, else per 4 CPUs).
    {"kind": "check", "model", "device", "precision"}
        reports torch, CUDA, GPU memory and whether the model loads; "done" carries "report".
Anything else the libraries print goes to stderr, so stdout carries only events. Results are written
atomically by the pipeline, so a worker killed at any moment leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from .errors import Cancelled, Geo4DError
from .progress import ProgressEvent

logger = logging.getLogger(__name__)

JOB_KINDS = ("reconstruct", "check")
FINAL_EVENTS = ("done", "error", "cancelled")


class EventWriter:
    """Writes one JSON event per line to the parent and flushes at once (thread-safe)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def emit(self, event_type: str, **fields: Any) -> None:
        line = json.dumps({"type": event_type, **fields})
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def progress(self, event: ProgressEvent) -> None:
        self.emit(
            "progress",
            stage=event.stage,
            done=event.done,
            total=event.total,
            elapsed=round(event.elapsed, 3),
            message=event.message,
        )


def watch_for_cancel(stream: IO[str], cancelled: threading.Event) -> threading.Thread:
    """Set `cancelled` on a cancel message or when the parent closes stdin; runs in a daemon thread."""

    def read() -> None:
        for line in stream:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("Ignoring a line from the parent that is not JSON: %r", line[:80])
                continue
            if isinstance(message, dict) and message.get("type") == "cancel":
                break
        cancelled.set()

    thread = threading.Thread(target=read, name="geo4d-cancel-watch", daemon=True)
    thread.start()
    return thread


def result_summary(folder: Path) -> dict:
    """What the panel shows of a finished result: frames, size, focal in pixels, timings, warnings."""
    from .result import read_description

    description = read_description(folder)
    return {
        "frames": description.num_frames,
        "source_frames": [description.source_frames[0], description.source_frames[-1]],
        "width": description.width,
        "height": description.height,
        "focal_px": description.intrinsics.fx,
        "timings": description.timings,
        "warnings": list(description.warnings),
    }


def run_reconstruct(job: dict, events: EventWriter, cancelled: threading.Event) -> dict:
    """Reconstruct job["video"] into job["output"]; returns the fields of the "done" event."""
    from .output_folder import check_result_folder

    check_result_folder(job["output"], job["video"], job["model"])  # before torch and the model load
    from .pipeline import ReconstructionSettings, load_model, reconstruct_to_folder

    settings = dict(job.get("settings", {}))
    if settings.get("size") is not None:
        settings["size"] = tuple(settings["size"])
    try:
        reconstruction_settings = ReconstructionSettings(**settings)
    except (TypeError, ValueError) as error:
        raise Geo4DError(f"Invalid reconstruction settings: {error}") from error
    started = time.perf_counter()
    if job.get("ray"):
        from .distributed import reconstruct_to_folder_on_ray

        output = reconstruct_to_folder_on_ray(
            job["video"], Path(job["output"]), job["model"], reconstruction_settings, job["ray"],
            job.get("ray_actors"), progress=events.progress, cancel=cancelled.is_set,
        )  # fmt: skip
        return {"output": str(output), "summary": {**result_summary(output), "seconds": _since(started)}}
    events.emit(
        "progress", stage="load", done=0, total=1, elapsed=0.0, message=f"Loading model {job['model']}"
    )
    model = load_model(job["model"], reconstruction_settings.device, reconstruction_settings.precision)
    if cancelled.is_set():
        raise Cancelled()
    output = reconstruct_to_folder(
        job["video"],
        Path(job["output"]),
        model,
        reconstruction_settings,
        progress=events.progress,
        cancel=cancelled.is_set,
    )
    return {"output": str(output), "summary": {**result_summary(Path(output)), "seconds": _since(started)}}


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def run_check(job: dict, events: EventWriter, cancelled: threading.Event) -> dict:
    """Report what the worker's Python offers: versions, CUDA, GPU memory, and whether the model loads."""
    report: dict[str, Any] = {"python": sys.executable, "python_version": platform.python_version()}
    try:
        import torch
    except ImportError as error:
        report["torch"] = None
        report["problem"] = f"torch cannot be imported in this Python ({error})."
        return {"report": report}
    report["torch"] = torch.__version__
    report["cuda_available"] = torch.cuda.is_available()
    report["cuda_version"] = torch.version.cuda
    if report["cuda_available"]:
        free, total = torch.cuda.mem_get_info(0)
        report["gpu"] = torch.cuda.get_device_name(0)
        report["gpu_memory_total_gb"] = round(total / 2**30, 2)
        report["gpu_memory_free_gb"] = round(free / 2**30, 2)
    model_name = job.get("model")
    if model_name:
        from .pipeline import load_model

        started = time.perf_counter()
        try:
            model = load_model(model_name, job.get("device", "auto"), job.get("precision", "auto"))
        except Geo4DError as error:
            report["model_error"] = str(error)
        else:
            report["model"] = str(model_name)
            parts = (model.unet, model.vae, model.pointmap_vae)
            report["model_parameters"] = sum(p.numel() for part in parts for p in part.parameters())
            report["model_load_seconds"] = round(time.perf_counter() - started, 3)
    return {"report": report}


RUNNERS = {"reconstruct": run_reconstruct, "check": run_check}


def run_job(job: dict, events: EventWriter, cancelled: threading.Event) -> None:
    """Run one job and emit exactly one final event; never raises for an expected failure."""
    kind = job.get("kind") if isinstance(job, dict) else None
    if kind not in RUNNERS:
        events.emit(
            "error", message=f"Unknown worker job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}."
        )
        return
    events.emit("started", pid=os.getpid(), kind=kind, module_file=__file__)
    try:
        fields = RUNNERS[kind](job, events, cancelled)
    except Cancelled as error:
        events.emit("cancelled", message=str(error))
    except Geo4DError as error:
        events.emit("error", message=str(error))
    except KeyError as error:
        events.emit("error", message=f"The worker job lacks the entry {error}; this is a bug in the caller.")
    except MemoryError:
        events.emit("error", message="Out of memory. Use fewer points, a larger stride or a smaller model.")
    except Exception as error:  # noqa: BLE001 - the parent must hear about every failure, then we exit 1
        logger.exception("The worker failed.")
        events.emit("error", message=f"The worker failed unexpectedly: {type(error).__name__}: {error}")
        raise
    else:
        events.emit("done", **fields)


def main() -> int:
    """Entry point: events go to the real stdout; everything else printed is moved to stderr."""
    events = EventWriter(os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="geo4d worker: %(message)s", stream=sys.stderr)
    first = sys.stdin.readline()
    try:
        job = json.loads(first)
    except json.JSONDecodeError:
        events.emit("error", message=f"The worker's first input line is not a JSON job: {first[:80]!r}.")
        return 2
    cancelled = threading.Event()
    watch_for_cancel(sys.stdin, cancelled)
    try:
        run_job(job, events, cancelled)
    except Exception:  # noqa: BLE001 - run_job reported it as an error event and logged its traceback
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The worker process (`python -m geo4d.core.worker`): runs one job and speaks core.worker.protocol with its parent.

Anything else the libraries print goes to stderr, so stdout carries only events. Results are written
atomically by the reconstruction, so a worker killed at any moment leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..errors import Cancelled, Geo4DError
from ..progress import ProgressEvent
from .protocol import (
    CANCEL,
    CANCELLED,
    CHECK,
    CONVERT,
    DONE,
    ERROR,
    JOB_KINDS,
    PROGRESS,
    RECONSTRUCT,
    STARTED,
    CheckJob,
    ConvertJob,
    ReconstructJob,
    decode,
    encode,
    progress_fields,
    result_summary,
)

logger = logging.getLogger(__name__)


class EventWriter:
    """Writes one JSON event per line to the parent and flushes at once (thread-safe)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def emit(self, event_type: str, **fields: Any) -> None:
        line = encode({"type": event_type, **fields})
        with self.lock:
            self.stream.write(line)
            self.stream.flush()

    def progress(self, event: ProgressEvent) -> None:
        self.emit(PROGRESS, **progress_fields(event))


def watch_for_cancel(stream: IO[str], cancelled: threading.Event) -> threading.Thread:
    """Set `cancelled` on a cancel message or when the parent closes stdin; runs in a daemon thread."""

    def read() -> None:
        for line in stream:
            message = decode(line)
            if message is None:
                logger.warning("Ignoring a line from the parent that is not a JSON message: %r", line[:80])
                continue
            if message.get("type") == CANCEL:
                break
        cancelled.set()

    thread = threading.Thread(target=read, name="geo4d-cancel-watch", daemon=True)
    thread.start()
    return thread


def run_reconstruct(message: dict, events: EventWriter, cancelled: threading.Event) -> dict:
    """Reconstruct the job's video into its result folder; returns the fields of the "done" event."""
    from ..output_folder import check_result_folder
    from ..result import read_description

    try:
        job = ReconstructJob.from_json(message)
    except ValueError as error:
        raise Geo4DError(f"Invalid reconstruction settings: {error}") from error
    check_result_folder(job.output, job.video, job.model)  # before torch and the model load
    from ..reconstruction import load_model, reconstruct_to_folder

    started = time.perf_counter()
    events.progress(ProgressEvent("load", 0, 1, 0.0, f"Loading model {job.model}"))
    model = load_model(job.model, job.settings.device, job.settings.precision)
    if cancelled.is_set():
        raise Cancelled()
    output = reconstruct_to_folder(
        job.video, Path(job.output), model, job.settings, progress=events.progress, cancel=cancelled.is_set
    )
    summary = result_summary(read_description(Path(output)))
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return {"output": str(output), "summary": summary}


def run_check(message: dict, events: EventWriter, cancelled: threading.Event) -> dict:
    """Report what the worker's Python offers: versions, CUDA, GPU memory, and whether the model loads."""
    job = CheckJob.from_json(message)
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
    model_name = job.model
    if model_name:
        from ..model_choice import model_files
        from ..reconstruction import load_model

        started = time.perf_counter()
        try:
            model = load_model(model_name, job.device, job.precision)
        except Geo4DError as error:
            report["model_error"] = str(error)
        else:
            report["model"] = str(model_name)
            parts = (model.unet, model.vae, model.pointmap_vae)
            report["model_parameters"] = sum(p.numel() for part in parts for p in part.parameters())
            report["model_load_seconds"] = round(time.perf_counter() - started, 3)
            files = [path for path in model_files(model_name) if path is not None]
            report["model_file_bytes"] = sum(path.stat().st_size for path in files)
    return {"report": report}


def run_convert(message: dict, events: EventWriter, cancelled: threading.Event) -> dict:
    """Convert the published checkpoints into job.output; the parent kills the worker to cancel (the file is
    written under a hidden name and renamed, so nothing half-written takes the output's name)."""
    from ..commands.convert_checkpoint import CONVERT_STEPS, convert

    job = ConvertJob.from_json(message)

    def progress(done: int, text: str) -> None:
        if cancelled.is_set():
            raise Cancelled()
        events.emit(PROGRESS, stage=CONVERT, done=done, total=CONVERT_STEPS, elapsed=0.0, message=text)

    return convert(job.model, job.vae, Path(job.output), job.dtype, job.preset, progress)


RUNNERS = {RECONSTRUCT: run_reconstruct, CHECK: run_check, CONVERT: run_convert}


def run_job(job: dict, events: EventWriter, cancelled: threading.Event) -> None:
    """Run one job and emit exactly one final event; never raises for an expected failure."""
    kind = job.get("kind") if isinstance(job, dict) else None
    if kind not in RUNNERS:
        events.emit(
            ERROR, message=f"Unknown worker job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}."
        )
        return
    events.emit(STARTED, pid=os.getpid(), kind=kind, module_file=__file__)
    try:
        fields = RUNNERS[kind](job, events, cancelled)
    except Cancelled as error:
        events.emit(CANCELLED, message=str(error))
    except Geo4DError as error:
        events.emit(ERROR, message=str(error))
    except KeyError as error:
        events.emit(ERROR, message=f"The worker job lacks the entry {error}; this is a bug in the caller.")
    except MemoryError:
        events.emit(ERROR, message="Out of memory. Use fewer points, a larger stride or a smaller model.")
    except Exception as error:  # noqa: BLE001 - the parent must hear about every failure, then we exit 1
        logger.exception("The worker failed.")
        events.emit(ERROR, message=f"The worker failed unexpectedly: {type(error).__name__}: {error}")
        raise
    else:
        events.emit(DONE, **fields)


def main() -> int:
    """Entry point: events go to the real stdout; everything else printed is moved to stderr."""
    events = EventWriter(os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8"))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="geo4d worker: %(message)s", stream=sys.stderr)
    first = sys.stdin.readline()
    job = decode(first)
    if job is None:
        events.emit(ERROR, message=f"The worker's first input line is not a JSON job: {first[:80]!r}.")
        return 2
    cancelled = threading.Event()
    watch_for_cancel(sys.stdin, cancelled)
    try:
        run_job(job, events, cancelled)
    except Exception:  # noqa: BLE001 - run_job reported it as an error event and logged its traceback
        return 1
    return 0

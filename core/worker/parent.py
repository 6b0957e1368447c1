"""The parent side of the worker process: spawn it, read its events in a thread, poll, cancel, kill.

subprocess and core.worker.protocol only (no torch), so the Blender side imports it. The caller chooses the worker's
Python: Blender's own (the default, sys.executable) or an external environment with a CUDA build of torch.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..cpu import apply_openmp_defaults
from ..errors import Geo4DError
from .protocol import (
    CANCEL,
    CANCELLED,
    DONE,
    ERROR,
    FINAL_EVENTS,
    PROGRESS,
    STARTED,
    decode,
    encode,
    progress_event,
)

logger = logging.getLogger(__name__)

# Seconds a cancelled worker gets to stop by itself before it is killed.
CANCEL_GRACE = 1.0
# Lines of the worker's stderr kept to explain a worker that died without a final event.
STDERR_TAIL = 20
# A job's states: before and while the worker runs, then the final event it ended with.
STATES = ("starting", "running", *FINAL_EVENTS)


@dataclass
class WorkerStatus:
    """What the parent knows of a job: state, the last progress event, the final payload or error."""

    state: str = "starting"
    stage: str = ""
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    message: str = ""
    result: dict = field(default_factory=dict)
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_EVENTS

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def worker_launch(python: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Command line and environment that start the worker (`python -m <package>.core.worker`) in `python`
    (default: this process's Python).

    The package may be installed under another name (Blender imports an extension as
    bl_ext.<repo>.geo4d): the child imports it by its folder name from the folder above, ahead of
    anything else. With this process's own Python the child also sees this process's sys.path (where
    Blender puts an extension's wheels).
    """
    package = __package__.removesuffix(".core.worker")
    package_dir = Path(sys.modules[package].__file__).resolve().parent
    search_path: list[str] = []
    module = f"{package}.core.worker"
    if package.rpartition(".")[2] == package_dir.name:
        search_path.append(str(package_dir.parent))
        module = f"{package_dir.name}.core.worker"
    python = python or sys.executable
    if interpreter_key(python) == interpreter_key(sys.executable):
        search_path += [entry for entry in sys.path if entry and Path(entry).is_dir()]
    environment = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    apply_openmp_defaults(environment)
    inherited = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = os.pathsep.join(search_path + ([inherited] if inherited else []))
    return [python, "-m", module], environment


def interpreter_key(python: str) -> Path:
    """What tells interpreters apart: a venv's folder for a venv's python (it links to the interpreter it
    was made from, but has its own packages), else the interpreter file with links followed."""
    path = Path(python).absolute()
    venv = path.parent.parent
    return venv if (venv / "pyvenv.cfg").is_file() else path.resolve()


def check_python(python: str) -> str:
    """The worker Python's path, refused with a clear message when it is not a runnable file."""
    path = Path(python).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise Geo4DError(
            f"The worker Python {python} is not an executable file. In the add-on preferences, point "
            "'Worker Python' at the python of an environment with torch, or clear it to use Blender's own."
        )
    return str(path)


class WorkerProcess:
    """One job in a child process. Call poll() often (a timer, a loop); it never blocks.

    job: a job of core.worker.protocol in its JSON form (to_json()). python: the interpreter to run (default
    this process's).
    """

    def __init__(self, job: dict, python: str | None = None) -> None:
        self.job = job
        self.python = check_python(python) if python else sys.executable
        self.status = WorkerStatus()
        self.process: subprocess.Popen | None = None
        self._events: queue.Queue[dict | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._threads: list[threading.Thread] = []
        self._kill_at: float | None = None
        self._stdout_closed = False

    def start(self) -> WorkerProcess:
        command, environment = worker_launch(self.python)
        logger.info("Starting the Geo4D worker: %s", " ".join(command))
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env=environment,
            )
        except OSError as error:
            raise Geo4DError(
                f"Cannot start the worker Python {self.python}: {error.strerror}. Check 'Worker Python' in the "
                "add-on preferences."
            ) from error
        self._threads = [
            threading.Thread(target=self._read_events, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._send(self.job)
        self.status.state = "running"
        return self

    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write(encode(message))
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            logger.info("The worker no longer reads its input (it has exited).")

    def _read_events(self, stream: IO[str]) -> None:
        for line in stream:
            event = decode(line)
            if event is None:
                self._stderr.append(line.rstrip())
                continue
            self._events.put(event)
        self._events.put(None)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip())
            logger.debug("worker: %s", line.rstrip())

    def poll(self) -> list[dict]:
        """Apply the events that arrived since the last call to `status` and return them."""
        arrived = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event is None:
                self._stdout_closed = True
                continue
            arrived.append(event)
            self._apply(event)
        if self._kill_at is not None and time.monotonic() >= self._kill_at and not self.status.finished:
            self.stop("Cancelled; the worker was stopped.")
        if not self.status.finished and self.process is not None and self._stdout_closed:
            code = self.process.wait()
            self.status.state = ERROR
            self.status.error = self._death_message(code)
        if self.status.finished:
            self._close()
        return arrived

    def _apply(self, event: dict) -> None:
        status, kind = self.status, event.get("type")
        if status.finished:  # final, even when the worker's last events arrive after a stop
            return
        if kind == STARTED:
            logger.info("Geo4D worker %s runs %s.", event.get("pid"), event.get("module_file"))
        elif kind == PROGRESS:
            progress = progress_event(event)
            status.stage, status.done, status.total = progress.stage, progress.done, progress.total
            status.elapsed, status.message = progress.elapsed, progress.message
        elif kind == DONE:
            status.state, status.result = DONE, {k: v for k, v in event.items() if k != "type"}
        elif kind == ERROR:
            status.state, status.error = ERROR, str(event.get("message", "unknown error"))
        elif kind == CANCELLED:
            status.state, status.message = CANCELLED, str(event.get("message", "Cancelled."))

    def _death_message(self, code: int) -> str:
        tail = "\n".join(line for line in self._stderr if line)[-1500:]
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"The Geo4D worker ({self.python}) {how} without a result. " + (
            f"Its last output:\n{tail}" if tail else "It printed nothing; check the worker Python."
        )

    def cancel(self, grace: float = CANCEL_GRACE) -> None:
        """Ask the worker to stop; poll() kills it if it has not stopped after `grace` seconds."""
        if self.process is None or self.status.finished:
            return
        self._send({"type": CANCEL})
        self._kill_at = time.monotonic() + grace

    def kill(self) -> None:
        """Stop the worker process now (a result is written atomically, so nothing half-done stays)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, message: str) -> None:
        """Kill the worker now and end the job as cancelled with `message`, without waiting for its
        output to reach the reader thread (which could otherwise leave the status running)."""
        self.kill()
        if not self.status.finished:
            self.status.state, self.status.message = CANCELLED, message
        self._close()

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> WorkerStatus:
        """Poll until the job finishes (or `timeout` seconds pass; then kill it and report an error)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.status.finished:
            self.poll()
            if deadline is not None and time.monotonic() > deadline and not self.status.finished:
                self.kill()
                self.status.state = ERROR
                self.status.error = f"The Geo4D worker did not finish within {timeout:.0f} s and was stopped."
                self._close()
            time.sleep(0 if self.status.finished else interval)
        return self.status

    def _close(self) -> None:
        """Reap the process, then let the reader threads reach the end of its pipes before closing them."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=CANCEL_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            logger.debug("The worker's input pipe was already closed.")
        for thread in self._threads:
            thread.join(timeout=1.0)
        self.process.stdout.close()
        self.process.stderr.close()
        self.process = None

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)


def run_worker_job(job: dict, python: str | None = None, timeout: float | None = None) -> WorkerStatus:
    """Run one job to the end in a worker (blocking) and return its final status."""
    return WorkerProcess(job, python).start().wait(timeout)


def describe_check(report: dict) -> list[str]:
    """The report of a "check" job in plain words, one line per fact."""
    lines = [f"Worker Python {report.get('python_version', '?')}: {report.get('python', '?')}"]
    if not report.get("torch"):
        lines.append(report.get("problem", "torch is not installed in the worker Python."))
        lines.append("Install torch there, or point 'Worker Python' at an environment that has it.")
        return lines
    lines.append(
        f"torch {report['torch']}"
        + (f" built for CUDA {report['cuda_version']}" if report.get("cuda_version") else " (CPU build)")
    )
    if report.get("cuda_available"):
        lines.append(
            f"GPU: {report['gpu']}, {report['gpu_memory_free_gb']:.1f} of {report['gpu_memory_total_gb']:.1f} GB free"
        )
    else:
        lines.append("No usable CUDA GPU: the reconstruction runs on the CPU (slow with the full model).")
    if "model_error" in report:
        lines.append(f"Model problem: {report['model_error']}")
    elif "model" in report:
        size = f", {report['model_file_bytes'] / 1e6:.1f} MB on disk" if "model_file_bytes" in report else ""
        lines.append(
            f"Model {report['model']} loads: {report['model_parameters'] / 1e6:.1f} M parameters{size} "
            f"in {report['model_load_seconds']:.1f} s"
        )
    return lines

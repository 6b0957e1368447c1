"""Runs a set-up plan: venv, pip and a check in the staging slot, each a subprocess; then the swap.

poll() never blocks, so Blender calls it from a timer; wait() loops over it for scripts and tests. The slot
in use is never written to: a failed or cancelled set-up leaves it as it was, and leaves the staging slot
for the next run to resume (pip skips what is already installed there).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .environment_setup import (
    CURRENT_FILE,
    MARKER_NAME,
    SLOTS,
    SetupPlan,
    check_free_space,
    current_slot,
    environment_python,
    find_base_python,
    read_marker,
    write_marker,
)
from .errors import Geo4DError

logger = logging.getLogger(__name__)

# Lines of output kept to explain a failed step.
TAIL_LINES = 200
# Imports the plan's modules in the new environment and says their versions, and whether torch sees CUDA.
CHECK_SCRIPT = """
import importlib, json, sys
versions = {name: getattr(importlib.import_module(name), "__version__", "") for name in sys.argv[1:]}
cuda = sys.modules["torch"].cuda.is_available() if "torch" in sys.modules else None
print("GEO4D-CHECK " + json.dumps({"python": sys.executable, "versions": versions, "cuda": cuda}))
"""
# pip's lines -> (pattern, stage shown to the user, whether the line is one more package found); the first
# group names the package.
PIP_STAGES = (
    (re.compile(r"^Collecting (\S+)"), "Collecting {}", True),
    (re.compile(r"^\s*Downloading (\S+)"), "Downloading {}", False),
    (re.compile(r"^Requirement already satisfied: (\S+)"), "Already installed: {}", True),
    (re.compile(r"^Processing (\S+)"), "Reading {}", True),
    (re.compile(r"^Installing collected packages: (.+)"), "Installing {}", False),
)
# Share of the pip step's progress bar reached after n packages found: 1 - FOUND_DECAY**n (of 70 %).
FOUND_DECAY = 0.85
NETWORK_SIGNS = (
    "Failed to establish a new connection",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Read timed out",
    "Connection refused",
    "Max retries exceeded",
    "Could not fetch URL",
    "HTTP error",
    "Connection reset",
)
WRONG_FILE_SIGNS = (
    "is not a supported wheel",
    "is invalid",
    "is not a valid wheel",
    "BadZipFile",
    "has an invalid wheel",
)


@dataclass
class Step:
    """One subprocess of the set-up: its command and its share of the progress bar (start, end)."""

    name: str
    command: list[str]
    start: float
    end: float


class EnvironmentBuild:
    """One run of a SetupPlan. state: running, done, error or cancelled; stage/fraction: progress;
    error: the one-line reason of a failure; python and versions: the environment made (when done)."""

    def __init__(self, plan: SetupPlan) -> None:
        self.plan = plan
        self.state = "starting"
        self.stage = "Starting"
        self.fraction = 0.0
        self.error = ""
        self.python = ""
        self.versions: dict[str, str] = {}
        self.cuda: bool | None = None
        self._steps: list[Step] = []
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._log: IO[str] | None = None
        self._log_lock = threading.Lock()
        self._collected = 0

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error", "cancelled")

    def start(self) -> EnvironmentBuild:
        """Check what can be checked at once (space, a base python), then start the first step.

        Raises Geo4DError for those checks; later failures end the run with state "error".
        """
        plan = self.plan
        plan.root.mkdir(parents=True, exist_ok=True)
        check_free_space(plan.root, plan.space_needed)
        in_use = current_slot(plan.root)
        self.slot = self._staging_slot(in_use)
        python = str(environment_python(self.slot))
        if self.slot != in_use and (read_marker(self.slot) is None or not os.path.lexists(python)):
            base = find_base_python(plan.pythons)
            self._clear_slot()
            self._steps.append(Step("venv", [base, "-m", "venv", str(self.slot)], 0.0, 0.1))
        self._log = open(plan.log, "w", encoding="utf-8")
        self._write_log(f"Set-up of {self.slot} from {plan.source.describe()}: {' '.join(plan.requirements)}")
        pip = [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
        pip += ["--progress-bar", "off", *plan.source.pip_arguments(), *plan.requirements]
        if self.slot != in_use:
            self._steps.append(Step("pip", pip, 0.1, 0.85))
        self._steps.append(Step("check", [python, "-c", CHECK_SCRIPT, *plan.modules()], 0.85, 0.95))
        self.state = "running"
        self._next_step()
        return self

    def _clear_slot(self) -> None:
        """Make the staging slot a new folder holding only our marker (not ready), so that whatever is in
        it later is ours: a venv of ours that never finished is removed; anything else there is refused."""
        slot = self.slot
        if os.path.lexists(slot):
            if slot.is_symlink() or not slot.is_dir() or (read_marker(slot) is None and any(slot.iterdir())):
                raise Geo4DError(
                    f"{slot} is in the way of the set-up: it is not an environment Geo4D made (no "
                    f"{MARKER_NAME} in it), and Geo4D never deletes what it did not write. Move it elsewhere "
                    "and set up again."
                )
            shutil.rmtree(slot)
        slot.mkdir()
        write_marker(slot, self.plan.requirements, ready=False)

    def _staging_slot(self, in_use: Path | None) -> Path:
        """The slot to build: the one in use when it already holds exactly these packages (only checked
        again), else the other one (an unfinished earlier set-up there is resumed)."""
        if in_use is not None and read_marker(in_use)["requirements"] == list(self.plan.requirements):
            return in_use
        names = [name for name in SLOTS if in_use is None or name != in_use.name]
        return self.plan.root / names[0]

    def _next_step(self) -> None:
        step = self._steps[0]
        self.stage, self.fraction = STEP_STAGES[step.name], step.start
        self._write_log(f"$ {' '.join(step.command)}")
        logger.info("Environment set-up: %s", " ".join(step.command))
        posix = os.name == "posix"
        try:
            self._process = subprocess.Popen(
                step.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8"),
                start_new_session=posix,  # its own process group: cancel stops pip and its children
            )
        except OSError as error:
            self._fail(f"Cannot run {step.command[0]}: {error.strerror}.")
            return
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._write_log(line.rstrip())
            self._lines.put(line.rstrip())
        self._lines.put(None)

    def _write_log(self, line: str) -> None:
        with self._log_lock:
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()

    def poll(self) -> None:
        """Take in the running step's output; start the next step or finish when it has ended."""
        while not self.finished:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._step_ended()
            else:
                self._tail.append(line)
                self._follow(line)

    def _follow(self, line: str) -> None:
        step = self._steps[0]
        if step.name == "check" and line.startswith("GEO4D-CHECK "):
            found = json.loads(line.split(" ", 1)[1])
            self.python, self.versions, self.cuda = found["python"], found["versions"], found["cuda"]
        if step.name != "pip":
            return
        seen = pip_stage(line)
        if seen is not None:
            self.stage, found = seen
            self._collected += found
            share = 1.0 if self.stage.startswith("Installing") else 0.7 * (1 - FOUND_DECAY**self._collected)
            self.fraction = step.start + (step.end - step.start) * share

    def _step_ended(self) -> None:
        step = self._steps.pop(0)
        code = self._process.wait()
        self._process = None
        self._write_log(f"({step.name} exited with code {code})")
        if code != 0:
            self._fail(self._failure(step, code))
            return
        if step.name == "check" and self.plan.require_cuda and not self.cuda:
            self._fail(
                f"The new environment's torch {self.versions.get('torch', '')} does not see the NVIDIA GPU "
                f"(a driver too old for its CUDA?): update the driver, or choose Torch Build 'CPU'. Log: {self.plan.log}"
            )
            return
        if self._steps:
            self._next_step()
            return
        self._swap()

    def _swap(self) -> None:
        """Make the checked staging slot the one in use; the earlier slot is removed afterwards."""
        root = self.plan.root
        earlier = current_slot(root)
        write_marker(self.slot, self.plan.requirements, ready=True)
        (root / f"{CURRENT_FILE}.new").write_text(self.slot.name, encoding="utf-8")
        os.replace(root / f"{CURRENT_FILE}.new", root / CURRENT_FILE)
        if earlier is not None and earlier != self.slot:
            try:
                shutil.rmtree(earlier)
            except OSError as error:  # in use by a worker (Windows): the next set-up builds over it
                logger.warning("Could not remove the earlier environment %s: %s", earlier, error)
        self.python = str(environment_python(self.slot))
        self.state, self.stage, self.fraction = "done", "Environment ready", 1.0
        self._close()

    def _failure(self, step: Step, code: int) -> str:
        """The one line that says why `step` failed and what to do, from its output."""
        text = "\n".join(self._tail)
        log = f" Log: {self.plan.log}"
        source = self.plan.source
        if "No space left on device" in text:
            return f"The disk is full ({self.plan.root}): free some space and set up again (it resumes).{log}"
        missing = re.search(r"No matching distribution found for (\S+)", text)
        if missing and not source.online:
            return f"The wheel folder {source.wheel_folder} has no wheel of {missing.group(1)} for this Python and system: download it there and set up again.{log}"
        if missing:
            return f"{source.describe().capitalize()} has no {missing.group(1)} for this Python and system: check the index or use a wheel folder.{log}"
        if any(sign in text for sign in WRONG_FILE_SIGNS):
            return f"{source.describe().capitalize()} holds a file that is not a usable wheel: remove it and set up again.{log}"
        if any(sign in text for sign in NETWORK_SIGNS):
            return f"Downloading from {source.describe()} failed: check the network connection and set up again (it resumes), or use a wheel folder.{log}"
        errors = [line for line in self._tail if line.startswith("ERROR") or "Error:" in line]
        said = (errors or [line for line in self._tail if line.strip()] or [f"exit code {code}"])[-1].strip()
        return f"{STEP_FAILURES[step.name]}: {said.rstrip('.')}.{log}"

    def _fail(self, message: str) -> None:
        self.state, self.error = "error", message
        self._write_log(f"FAILED: {message}")
        self._close()

    def cancel(self) -> None:
        """Stop the running step (pip and its children) now; the slot in use stays as it was."""
        if self.finished:
            return
        self._kill()
        self.state, self.stage = "cancelled", "Cancelled"
        self.error = "Set-up cancelled; the environment in use is unchanged (set up again to resume)."
        self._write_log(self.error)
        self._close()

    def _kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> EnvironmentBuild:
        """Poll until the run finishes; past `timeout` seconds it is cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            self.poll()
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
            time.sleep(0 if self.finished else interval)
        return self

    def _close(self) -> None:
        self._kill()
        with self._log_lock:
            if self._log is not None:
                self._log.close()
                self._log = None


STEP_STAGES = {"venv": "Creating the environment", "pip": "Installing packages", "check": "Checking packages"}
STEP_FAILURES = {
    "venv": "Creating the environment failed",
    "pip": "Installing the packages failed",
    "check": "The new environment cannot import its packages",
}


def pip_stage(line: str) -> tuple[str, bool] | None:
    """What a line of pip's output says in the progress bar's words, and whether it found one more
    package; None for the lines that change nothing."""
    for pattern, stage, found in PIP_STAGES:
        match = pattern.match(line)
        if match:
            return stage.format(match.group(1)), found
    return None


def start_build(plan: SetupPlan) -> EnvironmentBuild:
    """Start a set-up run; Geo4DError when it cannot start (no space, no Python)."""
    try:
        return EnvironmentBuild(plan).start()
    except OSError as error:
        raise Geo4DError(f"Cannot write the environment folder {plan.root}: {error.strerror}.") from error

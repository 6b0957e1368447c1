"""Long jobs started from the add-on preferences: set up the worker's Python environment, convert a checkpoint.

One at a time (preferences.TASKS). Each is a chain of runs (an environment build, worker jobs) followed from
a timer or waited for by scripts, shown as a progress bar in the preferences, cancellable, and ending with
Check Setup in the worker. Its outcome is one line in the preferences (task_message).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import bpy

from .core.environment_build import EnvironmentBuild, start_build
from .core.environment_setup import plan_setup
from .core.errors import Geo4DError
from .core.worker.parent import WorkerProcess
from .core.worker.protocol import CONVERT, ConvertJob
from .preferences import (
    TASKS,
    addon_preferences,
    check_job,
    check_lines,
    check_model_files,
    setup_choice,
    user_folder,
)
from .strip_job import RUNNING

logger = logging.getLogger(__name__)

# Folders of ours in the extension's user folder: the worker's environment, converted checkpoints.
ENVIRONMENT_FOLDER = "python"
MODELS_FOLDER = "models"


class WorkerRun:
    """A worker job with the attributes of an EnvironmentBuild (state, stage, fraction, error, poll, cancel)."""

    def __init__(self, job: dict, python: str | None) -> None:
        self.worker = WorkerProcess(job, python).start()

    def poll(self) -> None:
        self.worker.poll()

    def cancel(self) -> None:
        self.worker.cancel(grace=0.0)
        self.worker.poll()

    @property
    def finished(self) -> bool:
        return self.worker.status.finished

    @property
    def state(self) -> str:
        return self.worker.status.state

    @property
    def stage(self) -> str:
        return self.worker.status.message or "Starting the worker"

    @property
    def fraction(self) -> float:
        return self.worker.status.fraction

    @property
    def error(self) -> str:
        return self.worker.status.error or self.worker.status.message


class PreferencesTask:
    """Runs first(), then what after() returns for each finished run, until it returns None."""

    title = ""

    def __init__(self, context: bpy.types.Context) -> None:
        self.preferences = addon_preferences(context)
        self.state = "running"
        self.message = ""
        self.run: EnvironmentBuild | WorkerRun | None = None

    def first(self) -> EnvironmentBuild | WorkerRun:
        raise NotImplementedError

    def after(self, run: EnvironmentBuild | WorkerRun) -> EnvironmentBuild | WorkerRun | None:
        raise NotImplementedError

    @property
    def stage(self) -> str:
        return f"{self.title}: {self.run.stage}" if self.run is not None else self.title

    @property
    def fraction(self) -> float:
        return self.run.fraction if self.run is not None else 0.0

    def start(self) -> PreferencesTask:
        """Begin, or raise Geo4DError (also shown in the preferences) when it cannot."""
        if TASKS:
            raise Geo4DError(f"{TASKS[0].title} is still running: wait for it, or cancel it first.")
        try:
            self.run = self.first()
        except Geo4DError as error:
            self._end("error", str(error))
            raise
        TASKS.append(self)
        self._show("", False)
        return self

    def step(self) -> bool:
        """Follow the current run (never blocks); True once the task has ended."""
        if self.state != "running":
            return True
        self.run.poll()
        if not self.run.finished:
            return False
        if self.run.state != "done":
            self._end(self.run.state, self.run.error)
            return True
        try:
            self.run = self.after(self.run)
        except Geo4DError as error:
            self._end("error", str(error))
            return True
        if self.run is None:
            self._end("done", self.message)
        return self.state != "running"

    def cancel(self) -> None:
        if self.state == "running" and self.run is not None:
            self.run.cancel()
            self.step()

    def wait(self, interval: float = 0.05) -> PreferencesTask:
        while not self.step():
            time.sleep(interval)
        return self

    def _end(self, state: str, message: str) -> None:
        self.state = state
        self.message = message.strip().splitlines()[0] if message.strip() else f"{self.title}: {state}."
        if self in TASKS:
            TASKS.remove(self)
        self._show(self.message, state != "done")
        logger.info("%s ended (%s): %s", self.title, state, self.message)

    def _show(self, message: str, failed: bool) -> None:
        if self.preferences is not None:
            self.preferences.task_message = message
            self.preferences.task_failed = failed

    def check(self, python: str | None) -> WorkerRun:
        """Check Setup in the worker `python` with the model the preferences name now."""
        choice = setup_choice()
        check_model_files(choice.model())
        return WorkerRun(check_job(choice), python)

    def report_check(self, run: WorkerRun) -> None:
        lines = check_lines(run.worker.status)
        if self.preferences is not None:
            self.preferences.setup_report = "\n".join(lines)


class EnvironmentTask(PreferencesTask):
    """Set Up GPU Environment: build the environment, make it the Worker Python, run Check Setup in it.

    index_url: "" = pip's index (PyPI); requirements: None = the pinned worker packages.
    """

    title = "Set Up GPU Environment"

    def __init__(self, context, index_url: str = "", requirements: tuple[str, ...] | None = None) -> None:
        super().__init__(context)
        self.index_url, self.requirements = index_url, requirements

    def first(self) -> EnvironmentBuild:
        if RUNNING:
            raise Geo4DError(
                "A reconstruction is running with the current Worker Python: let it finish (or cancel it), then set up."
            )
        prefs = self.preferences
        plan = plan_setup(
            user_folder(ENVIRONMENT_FOLDER),
            bpy.app.online_access,
            prefs.torch_build.lower() if prefs else "auto",
            bpy.path.abspath(prefs.wheel_folder) if prefs and prefs.wheel_folder else "",
            self.index_url,
            self.requirements,
        )
        return start_build(plan)

    def after(self, run):
        if isinstance(run, EnvironmentBuild):
            if self.preferences is not None:
                self.preferences.worker_python = run.python
            torch = run.versions.get("torch")
            gpu = {None: "", True: ", CUDA", False: ", CPU only"}[run.cuda]
            self.message = f"Environment ready: {run.python}" + (f" (torch {torch}{gpu})" if torch else "")
            return self.check(run.python)
        self.report_check(run)
        return None


class ConvertTask(PreferencesTask):
    """Convert: the published model.ckpt + vae.ckpt into one .safetensors (in the worker), made the model,
    then Check Setup. preset: the network of the files ("full" = the published Geo4D)."""

    title = "Convert Checkpoint"

    def __init__(self, context, preset: str = "full") -> None:
        super().__init__(context)
        self.preset = preset

    def first(self) -> WorkerRun:
        choice = setup_choice()
        if not choice.checkpoint or Path(bpy.path.abspath(choice.checkpoint)).suffix != ".ckpt":
            raise Geo4DError(
                "Choose the downloaded Geo4D model.ckpt as 'Checkpoint' first; Convert turns it (with vae.ckpt) "
                "into one .safetensors file."
            )
        model, *vae = check_model_files(choice.model())
        vae = vae[0] if vae else model.with_name("vae.ckpt")
        if not vae.is_file():
            raise Geo4DError(
                f"The point-map VAE {vae} does not exist: choose the downloaded vae.ckpt as 'Point-Map VAE'."
            )
        digest = hashlib.sha1(str(model.resolve()).encode()).hexdigest()[:8]
        output = user_folder(MODELS_FOLDER) / f"{bpy.path.clean_name(model.parent.name)}-{digest}.safetensors"
        job = ConvertJob(str(model), str(vae), str(output), preset=self.preset)
        return WorkerRun(job.to_json(), choice.worker_python or None)

    def after(self, run):
        if run.worker.job["kind"] == CONVERT:
            result = run.worker.status.result
            if self.preferences is not None:
                self.preferences.checkpoint, self.preferences.vae_checkpoint = result["output"], ""
            self.message = (
                f"Converted into {result['output']} ({result['bytes'] / 1e6:.1f} MB); it is now the model."
            )
            return self.check(run.worker.python)
        self.report_check(run)
        return None


def stop_all() -> None:
    """Cancel every running task (the add-on is unregistered)."""
    for task in list(TASKS):
        task.cancel()
    TASKS.clear()

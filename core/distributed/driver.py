"""Windows and shots over a Ray cluster: actors that hold the model once, and the driver that aligns and writes.

Ray (the optional `geo4d[ray]`) is used here and in core.distributed.actors only. The driver decodes each shot, plans its windows,
puts its frames in Ray's object store and submits batches of windows to the actors (at most
CALLS_PER_ACTOR queued on each, so none idles while the driver aligns a finished shot); predictions stream
back as ray.wait sees them finish. A shot whose windows are all in is aligned and written through
core.reconstruction's own functions, so a Ray run gives the local run's result. Windows of an actor that died are
resubmitted to the others; a shot that fails is reported and writes nothing; cancelling kills the actors.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from ..cpu import OPENMP_DEFAULTS
from ..errors import Cancelled, Geo4DError
from ..progress import CancelCheck, ProgressCallback, ProgressEvent
from .actors import ModelFacts, WindowWorker, ray_session
from .shots import Shot

logger = logging.getLogger(__name__)

# Window batches queued on one actor at a time: one running, one waiting, so the actor never waits on the driver.
CALLS_PER_ACTOR = 2
# Seconds between the driver's cancel checks while it waits for windows.
POLL_SECONDS = 0.2
# Cores one CPU actor's torch threads get by default (clusters without GPUs).
CORES_PER_CPU_ACTOR = 4


@dataclass
class ShotOutcome:
    """How a shot ended: its folder (None when it failed), frames, focal in pixels, seconds, warnings."""

    shot: Shot
    folder: Path | None = None
    frames: int = 0
    focal_px: float | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None


@dataclass
class _ShotRun:
    """A shot between decoding and writing: its input, window plan, frames in the object store, predictions."""

    shot: Shot
    settings: object
    started: float
    network_input: object = None
    plan: object = None
    warnings: list[str] = field(default_factory=list)
    frames_ref: object = None
    predictions: dict = field(default_factory=dict)
    window_batch: int = 0
    estimated_windows: int = 0
    predict_started: float = 0.0
    timings: dict = field(default_factory=dict)


class RayJob:
    """Reconstruct shots on Ray actors (see the module docstring); run() returns one ShotOutcome per shot.

    detailed: report the pipeline's own stages (decode, predict, align, save) as a single-shot run does;
    otherwise one "batch" stage counts windows done of all shots, its message the shots done.
    """

    def __init__(
        self,
        ray: ModuleType,
        model: str,
        settings,
        actors: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
        detailed: bool = False,
    ) -> None:
        self.ray, self.model, self.settings = ray, model, settings
        self.progress, self.cancel, self.detailed = progress, cancel, detailed
        self.wanted_actors = actors
        self.actors: list = []
        self.created: list = []
        self.calls: dict = {}
        self.queue: deque = deque()
        self.in_flight: dict = {}
        self.outcomes: dict[Shot, ShotOutcome] = {}
        self.windows_done = 0
        self.windows_total = 0
        self.shots_total = 0
        self.retried_windows = 0
        self.started = time.perf_counter()
        self.facts: ModelFacts | None = None

    def run(self, shots: Sequence[Shot]) -> list[ShotOutcome]:
        self.shots_total = len(shots)
        try:
            self._start_actors()
            pending = deque(self._probed(shots))
            while pending or self.queue or self.in_flight:
                self._check_cancel()
                while pending and len(self.queue) < CALLS_PER_ACTOR * max(1, len(self.actors)):
                    self._prepare(pending.popleft())
                if not self.actors:
                    self._fail_all(pending, "every Ray actor died; see the log for why, and run it again")
                    break
                self._dispatch()
                if self.in_flight:
                    ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_SECONDS)
                    for ref in ready:
                        self._collect(ref)
        finally:
            for actor in self.created:
                self.ray.kill(actor)
        return [self.outcomes[shot] for shot in shots]

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled()

    def _report(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.progress is not None:
            elapsed = time.perf_counter() - self.started
            self.progress(ProgressEvent(stage, done, total, elapsed, message))

    def _start_actors(self) -> None:
        resources = self.ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if self.settings.device != "cpu" else 0
        count = self.wanted_actors or gpus or max(1, int(resources.get("CPU", 1)) // CORES_PER_CPU_ACTOR)
        options = {"num_gpus": 1} if gpus else {"num_cpus": max(1, int(resources.get("CPU", 1)) // count)}
        environment = {name: os.environ.get(name, value) for name, value in OPENMP_DEFAULTS.items()}
        remote = self.ray.remote(runtime_env={"env_vars": environment}, **options)(WindowWorker)
        self.created = [remote.remote(self.model, self.settings) for _ in range(count)]
        self._report(
            "load", 0, count, f"loading {self.model} on {count} Ray actor{'s' if count != 1 else ''}"
        )
        loads = [actor.load.remote() for actor in self.created]
        while len(self.ray.wait(loads, num_returns=len(loads), timeout=POLL_SECONDS)[0]) < len(loads):
            self._check_cancel()  # a large model takes minutes to load
        self.facts = self._get(loads[0])
        for ref in loads[1:]:
            self._get(ref)
        self.actors = list(self.created)
        self.calls = {actor: 0 for actor in self.actors}
        self._report("load", count, count, f"{count} actors on {self.facts.device}")

    def _get(self, ref):
        """ray.get, with a Geo4DError raised inside an actor re-raised as itself (its message intact)."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, Geo4DError):
                raise error.cause from None
            raise

    def _probed(self, shots: Sequence[Shot]) -> list[_ShotRun]:
        """The shots whose video opens and whose folder may be written, each with its window estimate."""
        from ..output_folder import check_result_folder
        from ..video import probe
        from ..windows import plan_windows

        runs = []
        length = self.facts.config.unet.temporal_length
        for shot in shots:
            settings = replace(
                self.settings,
                start=self.settings.start if shot.start is None else shot.start,
                end=self.settings.end if shot.end is None else shot.end,
            )
            run = _ShotRun(shot, settings, time.perf_counter())
            try:
                check_result_folder(shot.output, shot.video, self.model)
                info = probe(shot.video)
            except Geo4DError as error:
                self._fail(run, str(error))
                continue
            end = min(settings.end or info.num_frames, info.num_frames)
            run.estimated_windows = plan_windows(
                max(1, end - settings.start), length, settings.stride
            ).num_windows
            runs.append(run)
        self.windows_total = sum(run.estimated_windows for run in runs)
        return runs

    def _prepare(self, run: _ShotRun) -> None:
        """Decode a shot, plan its windows and queue them in batches."""
        from ..reconstruction import decode_video, plan_reconstruction
        from ..video import probe

        run.started = time.perf_counter()
        decode_progress = self.progress if self.detailed else None
        try:
            run.network_input = decode_video(
                run.shot.video,
                probe(run.shot.video),
                self.facts.config.input_sizes,
                run.settings,
                decode_progress,
                self.cancel,
            )
            run.plan, run.warnings = plan_reconstruction(
                run.network_input, self.facts.config, self.model, run.settings, self.facts.steps
            )
        except Cancelled:
            raise
        except Geo4DError as error:
            self._fail(run, str(error))
            return
        run.timings["decode_s"] = round(time.perf_counter() - run.started, 3)
        run.predict_started = time.perf_counter()
        self.windows_total += run.plan.num_windows - run.estimated_windows
        run.frames_ref = self.ray.put(run.network_input.frames)
        batch = self.facts.window_batch
        for first in range(0, run.plan.num_windows, batch):
            self.queue.append((run, list(range(first, min(first + batch, run.plan.num_windows)))))
        self._report_windows(f"{run.shot.name}: {run.plan.num_windows} windows queued")

    def _dispatch(self) -> None:
        for actor in sorted(self.actors, key=self.calls.get):
            while self.queue and self.calls[actor] < CALLS_PER_ACTOR:
                run, windows = self.queue.popleft()
                fps = run.network_input.fps
                ref = actor.predict.remote(run.frames_ref, fps, run.plan, windows)
                self.in_flight[ref] = (run, windows, actor)
                self.calls[actor] += 1

    def _collect(self, ref) -> None:
        run, windows, actor = self.in_flight.pop(ref)
        self.calls[actor] = self.calls.get(actor, 1) - 1
        try:
            predictions, batch = self._get(ref)
        except self.ray.exceptions.RayActorError as error:
            if actor in self.actors:
                self.actors.remove(actor)
                logger.warning(
                    "A Ray actor died (%s); its windows go to the %d left.", error, len(self.actors)
                )
            if run.shot not in self.outcomes:
                self.queue.appendleft((run, windows))
                self.retried_windows += len(windows)
            return
        except Geo4DError as error:
            self._fail(run, str(error))
            return
        except self.ray.exceptions.RayTaskError as error:  # a bug, reported as the shot's failure
            logger.error("A Ray actor failed on %s:\n%s", run.shot.name, error)
            self._fail(run, f"The model failed unexpectedly: {type(error.cause).__name__}: {error.cause}")
            return
        if run.shot in self.outcomes:  # the shot already failed
            return
        run.predictions.update(zip(windows, predictions, strict=True))
        run.window_batch = max(run.window_batch, batch)
        self.windows_done += len(windows)
        self._report_windows(f"{run.shot.name}: window {len(run.predictions)} of {run.plan.num_windows}")
        if len(run.predictions) == run.plan.num_windows:
            self._finish(run)

    def _report_windows(self, message: str) -> None:
        shots = f"{len(self.outcomes)}/{self.shots_total} shots done" if not self.detailed else ""
        text = "; ".join(part for part in (shots, message) if part)
        self._report("predict" if self.detailed else "batch", self.windows_done, self.windows_total, text)

    def _finish(self, run: _ShotRun) -> None:
        """Align a shot whose windows are all in and write its result folder (atomically)."""
        from ..reconstruction import aligned_reconstruction, save_result

        run.timings["predict_s"] = round(time.perf_counter() - run.predict_started, 3)
        facts = self.facts
        record = {
            "model": self.model,
            "device": facts.device,
            "dtype": facts.dtype,
            "sampling_steps": facts.steps,
            "window_batch": run.window_batch,
            "ray_actors": len(self.created),
        }
        predictions = [run.predictions[index] for index in range(run.plan.num_windows)]
        run.predictions, run.frames_ref = {}, None
        align_progress = self.progress if self.detailed else None
        if not self.detailed:
            self._report_windows(f"aligning {run.shot.name}")
        try:
            result = aligned_reconstruction(
                run.network_input, predictions, run.plan, run.warnings, record, run.settings,
                run.timings, run.started, align_progress, self.cancel,
            )  # fmt: skip
            if self.detailed:
                self._report("save", 0, 1, str(run.shot.output))
            folder = save_result(result, run.shot.output, run.settings)
        except Cancelled:
            raise
        except Geo4DError as error:
            self._fail(run, str(error))
            return
        if self.detailed:
            self._report("save", 1, 1, str(folder))
        self.outcomes[run.shot] = ShotOutcome(
            run.shot,
            folder,
            result.num_frames,
            float(result.intrinsics.fx),
            round(time.perf_counter() - run.started, 3),
            list(result.warnings),
        )
        run.network_input = None
        self._report_windows(f"{run.shot.name} written")

    def _fail(self, run: _ShotRun, message: str) -> None:
        """Record a shot's failure and drop its queued windows; its windows still running are ignored."""
        logger.warning("Shot %s failed: %s", run.shot.name, message)
        self.outcomes[run.shot] = ShotOutcome(
            run.shot, seconds=round(time.perf_counter() - run.started, 3), failure=message
        )
        self.queue = deque(entry for entry in self.queue if entry[0] is not run)
        if run.plan is not None:
            self.windows_total -= run.plan.num_windows - len(run.predictions)
        run.predictions, run.frames_ref, run.network_input = {}, None, None

    def _fail_all(self, pending: deque, message: str) -> None:
        """Fail every unfinished shot: waiting, queued, or with windows still on a (dead) actor."""
        queued = [entry[0] for entry in self.queue]
        running = [entry[0] for entry in self.in_flight.values()]
        for run in [*pending, *queued, *running]:
            if run.shot not in self.outcomes:
                self._fail(run, message)
        pending.clear()
        self.in_flight.clear()


def check_actor_count(actors: int | None) -> None:
    """--ray-actors is None (the cluster's GPUs or CPUs decide) or 1 or more."""
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
        raise Geo4DError(f"--ray-actors = {actors!r} is invalid: it must be 1 or more (or left out).")


def run_shots(
    address: str,
    model: str,
    settings,
    shots: Sequence[Shot],
    actors: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> list[ShotOutcome]:
    """Reconstruct `shots` on the Ray cluster at `address` (see ray_session); one outcome per shot."""
    check_actor_count(actors)
    with ray_session(address) as ray:
        return RayJob(ray, model, settings, actors, progress, cancel, detailed=len(shots) == 1).run(shots)


def reconstruct_to_folder_on_ray(
    video: str | Path,
    output: str | Path,
    model: str,
    settings,
    address: str,
    actors: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """reconstruction.reconstruct_to_folder with the windows on Ray actors: the same result folder, or the error."""
    video = Path(video)
    shot = Shot(video.stem, video, Path(output))
    outcome = run_shots(address, model, settings, [shot], actors, progress, cancel)[0]
    if outcome.failure is not None:
        raise Geo4DError(outcome.failure)
    return outcome.folder

"""One reconstruction of a movie strip: prepare, run in a worker process, import the result on the main thread.

The modal operator calls step() from a timer; background mode and scripts call run(), which loops over the
same step(). Nothing touches the .blend until the worker has written a complete result.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import bpy

from .core.errors import Cancelled, Geo4DError, SettingError
from .core.limits import check_choice, check_integer, check_number
from .core.output_folder import check_result_folder
from .core.result import read_description
from .core.settings import ReconstructionSettings, default_of, spec_of
from .core.worker.parent import WorkerProcess, WorkerStatus
from .core.worker.protocol import CANCELLED, DETAILED_STAGES, DONE, STAGES, ReconstructJob, result_summary
from .import_options import MAX_FRAME, ImportOptions
from .preferences import check_model_files, setup_choice, strip_result_folder
from .result_cache import cached_result_matches, check_job_record, job_fingerprint, record_job
from .scene_builder import ImportedResult, import_result
from .strips import StripFrames, read_strip, scene_fps

logger = logging.getLogger(__name__)

# Jobs whose worker is alive; geo4d.cancel and unregister() stop them.
RUNNING: list[StripJob] = []


@dataclass(frozen=True)
class StripSettings:
    """How to reconstruct a strip. Empty model/device/precision/worker_python mean "as in the preferences".

    stride, steps, seed, size: the ReconstructionSettings fields (their defaults and limits).
    frame_range: timeline frames (first, last), inclusive; None = the strip's visible frames.
    points_per_frame: ReconstructionSettings.max_points_per_frame, 0 for all. result_folder: empty = the
        strip's cache folder.
    points: "FULL" (every frame whole) or "SPLIT" (reconstructed with split points, imported as Set and Moving).
    reuse_result: import the cached result without running the worker when the same movie, model files and
        reconstruction settings made it (import-only settings such as storage may differ).
    timeout: seconds a blocking run() may take before the worker is stopped (None = no limit).
    """

    model: str = ""
    stride: int = default_of("stride")
    steps: int = default_of("steps")
    device: str = ""
    precision: str = ""
    frame_range: tuple[int, int] | None = None
    points_per_frame: int = 0
    storage: str = "STREAMED"
    points: str = "FULL"
    seed: int = default_of("seed")
    point_size: float = 1.0
    result_folder: str = ""
    worker_python: str = ""
    timeout: float | None = None
    size: tuple[int, int] | None = default_of("size")
    reuse_result: bool = True

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("model", "result_folder", "worker_python"):
            if not isinstance(getattr(self, name), str):
                raise SettingError(owner, name, getattr(self, name), "a string")
        for name in ("stride", "steps", "seed", "size"):
            spec_of(name).check(owner, name, getattr(self, name))
        most_points = int(spec_of("max_points_per_frame").high)
        check_integer(owner, "points_per_frame", self.points_per_frame, 0, most_points, " (0 = all)")
        for name in ("device", "precision"):
            check_choice(owner, name, getattr(self, name), ("", *spec_of(name).names))
        if self.frame_range is not None:
            frames = self.frame_range
            if not isinstance(frames, tuple | list) or len(frames) != 2:
                raise SettingError(owner, "frame_range", frames, "None or (first, last) timeline frames")
            for frame in frames:
                check_integer(owner, "frame_range", frame, 0, MAX_FRAME)
        # checked now, not after the run
        ImportOptions(storage=self.storage, point_size=self.point_size, points=self.points)
        if self.timeout is not None:
            check_number(owner, "timeout", self.timeout, 0.0, float("inf"), "None or seconds > 0", False)
        if not isinstance(self.reuse_result, bool):
            raise SettingError(owner, "reuse_result", self.reuse_result, "True or False")


class StripJob:
    """The reconstruction of one strip: checks everything it can before a worker starts."""

    def __init__(self, scene: bpy.types.Scene, strip: bpy.types.Strip, settings: StripSettings) -> None:
        choice = setup_choice()
        self.settings = settings
        self.scene_name = scene.name
        self.frames: StripFrames = read_strip(scene, strip, settings.frame_range)
        if self.frames.timeline_start < 0:
            raise Geo4DError(
                f"The strip '{strip.name}' shows these frames before timeline frame 0, where Blender cannot "
                "key them. Move the strip to frame 0 or later."
            )
        self.model = settings.model or choice.model()
        files = check_model_files(self.model)
        self.folder = (
            Path(bpy.path.abspath(settings.result_folder)).resolve()
            if settings.result_folder
            else strip_result_folder(choice, scene.name, strip.name)
        )
        reconstruction = ReconstructionSettings(
            start=self.frames.movie_start,
            end=self.frames.movie_end,
            stride=settings.stride,
            steps=settings.steps,
            seed=settings.seed,
            device=settings.device or choice.device,
            precision=settings.precision or choice.precision,
            size=settings.size,
            max_points_per_frame=settings.points_per_frame or None,
            points=settings.points.lower(),
        )
        self.job = ReconstructJob(  # with a Ray Address the worker is the driver; the result is the same
            str(self.frames.video), str(self.folder), self.model, reconstruction, ray=choice.ray_address
        ).to_json()
        check_result_folder(self.folder, self.frames.video, self.model)  # before the worker: refused at once
        check_job_record(self.folder, [self.frames.video])
        self.fingerprint = job_fingerprint(self.job, files)
        self.cached = settings.reuse_result and cached_result_matches(self.folder, self.fingerprint)
        self.worker = WorkerProcess(self.job, settings.worker_python or choice.worker_python or None)

    @property
    def status(self) -> WorkerStatus:
        return self.worker.status

    def status_text(self) -> str:
        """One line for the status bar and the panel."""
        status = self.status
        if status.stage in DETAILED_STAGES and status.message:
            return f"Geo4D '{self.frames.strip_name}': {status.message}"
        stage = STAGES.get(status.stage, status.stage.capitalize() or "Starting worker")
        counter = f" {status.done}/{status.total}" if status.total > 1 else ""
        return f"Geo4D '{self.frames.strip_name}': {stage}{counter}"

    def start(self) -> StripJob:
        self.worker.start()
        RUNNING.append(self)
        self._show_progress()
        return self

    def step(self) -> bool:
        """Take in the worker's news (never blocks); True once the worker has finished."""
        self.worker.poll()
        if self.status.finished and self in RUNNING:
            RUNNING.remove(self)
        self._show_progress()
        return self.status.finished

    def cancel(self) -> None:
        """Stop the worker: it gets a cancel message and is killed if it has not stopped within a second."""
        self.worker.cancel()

    def run(self) -> ImportedResult:
        """Start, wait for the worker (blocking), then import: the synchronous path of scripts and `blender -b`.

        A matching cached result is imported at once, without a worker.
        """
        if self.cached:
            return self.finish()
        self.start()
        try:
            self.worker.wait(self.settings.timeout)
        finally:
            self.worker.kill()
            self.step()
        return self.finish()

    def finish(self) -> ImportedResult:
        """Import a finished job's result into its scene on the strip's frames; raise for errors and cancels."""
        status = self.status
        if self.cached:
            summary = dict(result_summary(read_description(self.folder)), seconds=0.0, cached=True)
        elif status.state == CANCELLED:
            raise Cancelled("Reconstruction cancelled; nothing was added to the scene.")
        elif status.state != DONE:
            raise Geo4DError(status.error or "The Geo4D worker stopped without a result.")
        else:
            summary = status.result["summary"]
            record_job(self.folder, self.fingerprint)
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise Geo4DError(f"The scene '{self.scene_name}' was removed while the strip was reconstructed.")
        self._check_result()
        imported = self._import(scene, summary["warnings"])
        self._store_summary(scene, imported, summary)
        return imported

    def _check_result(self) -> None:
        """The result must cover exactly the requested movie frames, or the timeline mapping would be wrong."""
        source = list(read_description(self.folder).source_frames)
        wanted = list(range(self.frames.movie_start, self.frames.movie_end))
        if source != wanted:
            raise Geo4DError(
                f"The result in {self.folder} covers movie frames {source[0]}..{source[-1]} ({len(source)}), "
                f"not the strip's {wanted[0]}..{wanted[-1]}. Reconstruct the strip again."
            )

    def _import(self, scene: bpy.types.Scene, result_warnings: list[str]) -> ImportedResult:
        """The foundation importer on the strip's first frame; the scene keeps its own fps and frame range."""
        options = ImportOptions(
            frame_start=self.frames.timeline_start,
            storage=self.settings.storage,
            points=self.settings.points,
            point_size=self.settings.point_size,
        )
        render = scene.render
        kept = (render.fps, render.fps_base, scene.frame_start, scene.frame_end)
        imported = import_result(self.folder, options, scene)
        render.fps, render.fps_base, scene.frame_start, scene.frame_end = kept
        fps = scene_fps(scene)
        if not math.isclose(fps, self.frames.movie_fps, rel_tol=1e-3):
            imported.warnings.append(
                f"The scene plays at {fps:g} fps and the movie at {self.frames.movie_fps:g} fps: each timeline frame "
                "still shows its own movie frame and camera, but playback speed differs from the footage."
            )
        imported.warnings.extend(result_warnings)
        return imported

    def _store_summary(self, scene: bpy.types.Scene, imported: ImportedResult, summary: dict) -> None:
        settings = getattr(scene, "geo4d", None)
        text = (
            f"{summary['frames']} frames ({self.frames.timeline_start}-{self.frames.timeline_end}), focal "
            f"{summary['focal_px']:.0f} px = {imported.camera.data.lens:.1f} mm, "
            + ("cached result" if summary.get("cached") else f"{summary['seconds']:.0f} s")
        )
        logger.info("Geo4D '%s': %s", self.frames.strip_name, text)
        if settings is not None:
            settings.last_summary = text
            settings.last_warnings = "; ".join(imported.warnings)

    def _show_progress(self) -> None:
        progress = getattr(bpy.context.window_manager, "geo4d_progress", None)
        if progress is None:
            return
        progress.running = bool(RUNNING)
        progress.fraction = self.status.fraction
        progress.text = self.status_text() if not self.status.finished else ""
        progress.strip = self.frames.strip_name


def stop_all() -> None:
    """Kill every running worker now (add-on unregistered, another file opened)."""
    for job in list(RUNNING):
        job.worker.stop("Stopped: another file was opened or the add-on was unregistered.")
        job.step()
    RUNNING.clear()


@bpy.app.handlers.persistent
def stop_all_on_load(*_arguments) -> None:
    """load_pre handler: opening a file ends the modal operators, so their workers must end too."""
    if RUNNING:
        logger.info("Another file is being opened: stopping %d Geo4D reconstruction(s).", len(RUNNING))
    stop_all()


def register() -> None:
    bpy.app.handlers.load_pre.append(stop_all_on_load)


def unregister() -> None:
    stop_all()
    if stop_all_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(stop_all_on_load)

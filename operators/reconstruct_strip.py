"""geo4d.reconstruct_strip: a movie strip in, a keyed camera and an animated point cloud on its frames out.

Invoked from the UI it is modal: a worker process does the work while Blender stays responsive, progress
reaches the status bar and the panel, and Esc (or geo4d.cancel) stops the worker at once. Executed from a
script or in background mode it runs synchronously through the same StripJob.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender_compat import sequencer_scene
from ..core.errors import Cancelled, Geo4DError, SettingError
from ..properties import (
    DEVICE,
    FRAME_FIRST,
    FRAME_LAST,
    INPUT_SIZE,
    POINT_SIZE,
    POINTS,
    POINTS_PER_FRAME,
    PRECISION,
    SEED,
    STEPS,
    STORAGE,
    STRIDE,
    USE_STRIP_RANGE,
)
from ..scene_builder import ImportedResult
from ..strip_job import StripJob, StripSettings
from ..strips import find_strip

logger = logging.getLogger(__name__)

# Seconds between the modal operator's looks at the worker.
TIMER_INTERVAL = 0.1
# StripSettings fields -> the operator's properties that set them (the others share the field's name).
PROPERTY_NAMES = {"frame_range": "frame_first/frame_last", "size": "input_size"}


class GEO4D_OT_reconstruct_strip(bpy.types.Operator):
    """Reconstruct a movie strip with Geo4D into a camera and a point cloud lined up with the strip"""

    bl_idname = "geo4d.reconstruct_strip"
    bl_label = "Reconstruct Strip"
    bl_options = {"REGISTER", "UNDO"}

    strip: StringProperty(
        name="Strip", description="Name of the movie strip (empty: the active strip of the sequencer scene)"
    )
    scene_name: StringProperty(
        name="Scene",
        description="Scene that holds the strip and receives the result (empty: the sequencer scene)",
    )
    model: StringProperty(
        name="Model",
        description="'tiny' for the embedded model, or the path of a checkpoint (empty: as in the preferences)",
    )
    stride: STRIDE
    steps: STEPS
    device: DEVICE
    precision: PRECISION
    use_strip_range: USE_STRIP_RANGE
    frame_first: FRAME_FIRST
    frame_last: FRAME_LAST
    points_per_frame: POINTS_PER_FRAME
    storage: STORAGE
    points: POINTS
    seed: SEED
    point_size: POINT_SIZE
    input_size: INPUT_SIZE
    reuse_result: BoolProperty(
        name="Reuse Result",
        description="Import the strip's cached result at once when the same movie, model and settings made it",
        default=True,
    )
    result_folder: StringProperty(
        name="Result Folder",
        description="Where the result is written (empty: the strip's folder in the result cache)",
        subtype="DIR_PATH",
    )

    def settings(self) -> StripSettings:
        return StripSettings(
            model=self.model,
            stride=self.stride,
            steps=self.steps,
            device="" if self.device == "PREFERENCES" else self.device,
            precision="" if self.precision == "PREFERENCES" else self.precision,
            frame_range=None if self.use_strip_range else (self.frame_first, self.frame_last),
            points_per_frame=self.points_per_frame,
            storage=self.storage,
            points=self.points,
            seed=self.seed,
            point_size=self.point_size,
            result_folder=self.result_folder,
            size=tuple(self.input_size) if any(self.input_size) else None,
            reuse_result=self.reuse_result,
        )

    def prepare(self, context: bpy.types.Context) -> StripJob:
        """Everything that can be checked before a worker starts (strip, range, model files)."""
        if self.scene_name:
            scene = bpy.data.scenes.get(self.scene_name)
            if scene is None:
                raise Geo4DError(f"There is no scene named '{self.scene_name}'.")
        else:
            scene = sequencer_scene(context)
        try:
            settings = self.settings()
        except SettingError as error:
            raise Geo4DError(error.named(PROPERTY_NAMES.get(error.field, error.field))) from error
        return StripJob(scene, find_strip(scene, self.strip), settings)

    def execute(self, context: bpy.types.Context) -> set[str]:
        return self._outcome(lambda: self.prepare(context).run())

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not runs_modally(context):
            return self.execute(context)
        try:
            job = self.prepare(context)
        except Geo4DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if job.cached:
            return self._finish(job)
        try:
            self._job = job.start()
        except Geo4DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(self._job.status_text() + "  (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER" and not self._job.status.finished:
            return {"PASS_THROUGH"}
        if not self._job.step():
            context.workspace.status_text_set(self._job.status_text() + "  (Esc to cancel)")
            _redraw(context)
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        _redraw(context)
        return self._finish(self._job)

    def _finish(self, job: StripJob) -> set[str]:
        return self._outcome(job.finish)

    def _outcome(self, action: Callable[[], ImportedResult]) -> set[str]:
        """Run what imports the result; report its warnings, or its error as the operator's outcome."""
        try:
            imported = action()
        except Cancelled as error:
            self.report({"WARNING"}, str(error))
            return {"CANCELLED"}
        except Geo4DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for warning in imported.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Reconstructed into {imported.collection.name}.")
        return {"FINISHED"}


def runs_modally(context: bpy.types.Context) -> bool:
    """Whether invoke() can go modal: timer and key events reach an operator only with a user interface,
    never in background mode (`blender -b`, the bpy module), where a modal run would wait forever."""
    return not bpy.app.background and context.window is not None


def _redraw(context: bpy.types.Context) -> None:
    for area in context.screen.areas:
        area.tag_redraw()

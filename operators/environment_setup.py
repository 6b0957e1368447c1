"""geo4d.setup_environment, geo4d.convert_checkpoint and geo4d.cancel_preferences_task: the preferences' long jobs.

From the preferences they are modal: a timer follows the task while Blender stays responsive, the
preferences show its progress, and Esc or Cancel stops it. From a script or in background mode they run
synchronously. Every outcome is also one line in the preferences (task_message).
"""

from __future__ import annotations

import logging

import bpy
from bpy.props import StringProperty

from ..core.errors import Geo4DError
from ..preference_tasks import ConvertTask, EnvironmentTask, PreferencesTask
from ..preferences import TASKS
from .reconstruct_strip import TIMER_INTERVAL, runs_modally

logger = logging.getLogger(__name__)

HIDDEN = {"HIDDEN", "SKIP_SAVE"}


class PreferencesTaskOperator:
    """invoke/modal/execute of an operator that runs one PreferencesTask (made by task())."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not TASKS

    def task(self, context: bpy.types.Context) -> PreferencesTask:
        raise NotImplementedError

    def _start(self, context: bpy.types.Context) -> PreferencesTask | None:
        try:
            return self.task(context).start()
        except Geo4DError as error:
            self.report({"ERROR"}, str(error))
            return None

    def execute(self, context: bpy.types.Context) -> set[str]:
        task = self._start(context)
        return self._outcome(task.wait()) if task is not None else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if not runs_modally(context):
            return self.execute(context)
        self._task = self._start(context)
        if self._task is None:
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(TIMER_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self._task.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = self._task.step()
        _redraw(context)
        if not finished:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        return self._outcome(self._task)

    def _outcome(self, task: PreferencesTask) -> set[str]:
        if task.state == "done":
            self.report({"INFO"}, task.message)
            return {"FINISHED"}
        self.report({"WARNING"} if task.state == "cancelled" else {"ERROR"}, task.message)
        return {"CANCELLED"}


class GEO4D_OT_setup_environment(PreferencesTaskOperator, bpy.types.Operator):
    """Make a Python environment with torch for this machine (CUDA with an NVIDIA driver) and the worker's
    packages in the add-on's user folder, then use it as Worker Python"""

    bl_idname = "geo4d.setup_environment"
    bl_label = "Set Up GPU Environment"

    index_url: StringProperty(
        name="Package Index",
        description="A PEP 503 package index to install from instead of pip's (a studio mirror; empty: PyPI)",
        options=HIDDEN,
    )
    packages: StringProperty(
        name="Packages",
        description="Requirements separated by spaces instead of the worker's pinned packages (empty: those)",
        options=HIDDEN,
    )

    def task(self, context: bpy.types.Context) -> EnvironmentTask:
        return EnvironmentTask(context, self.index_url, tuple(self.packages.split()) or None)


class GEO4D_OT_convert_checkpoint(PreferencesTaskOperator, bpy.types.Operator):
    """Convert the downloaded model.ckpt and vae.ckpt into one .safetensors file (faster to load, no CLIP
    towers) in the worker, use it as the checkpoint and check that it loads"""

    bl_idname = "geo4d.convert_checkpoint"
    bl_label = "Convert Checkpoint"

    preset: StringProperty(
        name="Network",
        description="The network of the files: full (the published Geo4D) or tiny",
        default="full",
        options=HIDDEN,
    )

    def task(self, context: bpy.types.Context) -> ConvertTask:
        return ConvertTask(context, self.preset)


class GEO4D_OT_cancel_preferences_task(bpy.types.Operator):
    """Stop the running set-up or conversion; the environment and model in use stay as they were"""

    bl_idname = "geo4d.cancel_preferences_task"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(TASKS)

    def execute(self, context: bpy.types.Context) -> set[str]:
        for task in list(TASKS):
            task.cancel()
        return {"FINISHED"}


def _redraw(context: bpy.types.Context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()

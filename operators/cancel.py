"""geo4d.cancel: stop every running Geo4D reconstruction (its worker process) at once."""

from __future__ import annotations

import bpy

from ..strip_job import RUNNING


class GEO4D_OT_cancel(bpy.types.Operator):
    """Stop the running Geo4D reconstruction; nothing is added to the scene"""

    bl_idname = "geo4d.cancel"
    bl_label = "Cancel Reconstruction"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(RUNNING)

    def execute(self, context: bpy.types.Context) -> set[str]:
        for job in list(RUNNING):
            job.cancel()
        self.report({"INFO"}, "Cancelling the Geo4D reconstruction.")
        return {"FINISHED"}

"""The Geo4D sidebar tab in the Sequencer and the 3D viewport: strip, model, settings, run, progress, last run."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..blender_compat import sequencer_scene
from ..operators.cancel import GEO4D_OT_cancel
from ..operators.reconstruct_strip import GEO4D_OT_reconstruct_strip
from ..owned_data import PROBLEM_TAG
from ..preferences import TINY_MODEL, TINY_WEIGHTS, setup_choice
from ..strip_job import RUNNING
from ..strips import strip_problem


def model_readiness(scene_settings) -> tuple[str, bool]:
    """What the panel says about the chosen model, and whether a run can start with it."""
    if scene_settings.model == "TINY":
        if TINY_WEIGHTS.is_file():
            return "Tiny model ready", True
        return "Tiny weights missing from the add-on: reinstall it", False
    choice = setup_choice()
    if not choice.checkpoint:
        return "No checkpoint set: choose one in the preferences", False
    missing = [part for part in choice.model().split(",") if not Path(part).is_file()]
    if missing:
        return f"Checkpoint not found: {Path(missing[0]).name}", False
    return f"Checkpoint {Path(choice.checkpoint).name}", True


def active_strip(context: bpy.types.Context):
    scene = sequencer_scene(context)
    editor = scene.sequence_editor
    return scene, (editor.active_strip if editor else None)


class Geo4DPanelBase:
    bl_region_type = "UI"
    bl_category = "Geo4D"


class Geo4DMainPanel(Geo4DPanelBase):
    bl_label = "Geo4D Reconstruction"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene, strip = active_strip(context)
        settings = scene.geo4d
        usable = self._draw_strip(layout, scene, strip)

        column = layout.column(heading="Range")
        column.prop(settings, "use_strip_range")
        sub = column.column(align=True)
        sub.active = not settings.use_strip_range
        sub.prop(settings, "frame_first")
        sub.prop(settings, "frame_last")

        column = layout.column()
        column.prop(settings, "model")
        message, ready = model_readiness(settings)
        column.label(text=message, icon="CHECKMARK" if ready else "ERROR")
        column.prop(settings, "stride")
        column.prop(settings, "steps")
        column.prop(settings, "points_per_frame")
        column.prop(settings, "storage")
        column.prop(settings, "points")

        progress = context.window_manager.geo4d_progress
        if RUNNING:
            layout.progress(factor=progress.fraction, type="BAR", text=progress.text or "Starting")
            layout.operator(GEO4D_OT_cancel.bl_idname, icon="CANCEL")
            return
        row = layout.row()
        row.scale_y = 1.5
        row.enabled = usable and ready
        operator = row.operator(GEO4D_OT_reconstruct_strip.bl_idname, icon="PLAY")
        if strip is not None:
            self._fill(operator, scene, strip.name, settings)

    @staticmethod
    def _draw_strip(layout, scene, strip) -> bool:
        box = layout.box()
        if strip is None:
            box.label(text="Select a movie strip in the Sequencer", icon="INFO")
            return False
        box.label(text=strip.name, icon="FILE_MOVIE" if strip.type == "MOVIE" else "ERROR")
        problem = strip_problem(strip)
        if problem:
            box.label(text=problem)
            return False
        first, last = strip.frame_final_start, strip.frame_final_end - 1
        box.label(text=f"Frames {first}-{last} ({last - first + 1}), {strip.fps:g} fps")
        return True

    @staticmethod
    def _fill(operator, scene, strip_name: str, settings) -> None:
        """Pass the panel's settings to the operator explicitly (scripts see the same parameters)."""
        operator.strip = strip_name
        operator.scene_name = scene.name
        operator.model = TINY_MODEL if settings.model == "TINY" else ""
        operator.stride = settings.stride
        operator.steps = settings.steps
        operator.device = settings.device
        operator.precision = settings.precision
        operator.use_strip_range = settings.use_strip_range
        operator.frame_first = settings.frame_first
        operator.frame_last = settings.frame_last
        operator.points_per_frame = settings.points_per_frame
        operator.storage = settings.storage
        operator.points = settings.points
        operator.seed = settings.seed


class Geo4DAdvancedPanel(Geo4DPanelBase):
    bl_label = "Advanced"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = sequencer_scene(context).geo4d
        layout.prop(settings, "device")
        layout.prop(settings, "precision")
        layout.prop(settings, "seed")


class Geo4DLastRunPanel(Geo4DPanelBase):
    bl_label = "Last Run"

    def draw(self, context: bpy.types.Context) -> None:
        settings = sequencer_scene(context).geo4d
        column = self.layout.column(align=True)
        column.label(text=settings.last_summary or "Nothing reconstructed yet in this scene")
        for warning in filter(None, settings.last_warnings.split("; ")):
            column.label(text=warning, icon="ERROR")
        # Streamed clouds turned off on opening the file because a frame file is damaged.
        for obj in context.scene.objects:
            if PROBLEM_TAG in obj:
                column.label(text=f"{obj.name}: {obj[PROBLEM_TAG]}", icon="ERROR")


def _panel(base: type, space: str, name: str, parent: str | None = None) -> type:
    """The panel `base` in one editor's sidebar, as a registrable class with Blender's naming."""
    attributes = {"bl_space_type": space, "bl_idname": name}
    if parent:
        attributes["bl_parent_id"] = parent
    return type(name, (base, bpy.types.Panel), attributes)


SEQUENCER_MAIN = _panel(Geo4DMainPanel, "SEQUENCE_EDITOR", "SEQUENCER_PT_geo4d")
VIEW3D_MAIN = _panel(Geo4DMainPanel, "VIEW_3D", "VIEW3D_PT_geo4d")
PANELS = (
    SEQUENCER_MAIN,
    _panel(Geo4DAdvancedPanel, "SEQUENCE_EDITOR", "SEQUENCER_PT_geo4d_advanced", SEQUENCER_MAIN.bl_idname),
    _panel(Geo4DLastRunPanel, "SEQUENCE_EDITOR", "SEQUENCER_PT_geo4d_last_run", SEQUENCER_MAIN.bl_idname),
    VIEW3D_MAIN,
    _panel(Geo4DAdvancedPanel, "VIEW_3D", "VIEW3D_PT_geo4d_advanced", VIEW3D_MAIN.bl_idname),
    _panel(Geo4DLastRunPanel, "VIEW_3D", "VIEW3D_PT_geo4d_last_run", VIEW3D_MAIN.bl_idname),
)

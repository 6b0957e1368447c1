"""The File > Import operator: bring a reconstruction folder into the scene as a camera and a point cloud."""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.errors import Geo4DError, SettingError
from ..core.result import JSON_NAME
from ..import_options import MAX_FRAME, ImportOptions
from ..properties import POINT_SIZE, POINTS, STORAGE
from ..scene_builder import import_result

logger = logging.getLogger(__name__)


class GEO4D_OT_import_result(bpy.types.Operator, ImportHelper):
    """Import a Geo4D reconstruction folder: a keyed camera and an animated, coloured point cloud."""

    bl_idname = "geo4d.import_result"
    bl_label = "Import Geo4D Reconstruction"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})
    directory: StringProperty(
        name="Result Folder",
        description="Folder that holds reconstruction.json (used when no file is chosen)",
        subtype="DIR_PATH",
        options={"SKIP_SAVE"},
    )
    frame_start: IntProperty(
        name="Start Frame",
        description="Timeline frame that shows the first reconstructed frame",
        default=1,
        min=0,
        max=MAX_FRAME,
    )
    storage: STORAGE
    points: POINTS
    point_size: POINT_SIZE
    point_radius: FloatProperty(
        name="Fixed Radius",
        description="A fixed point radius in scene units instead of the depth-scaled size (0: scaled)",
        default=0.0,
        min=0.0,
        subtype="DISTANCE",
    )

    def result_folder(self) -> Path:
        """The chosen result: the folder of a chosen reconstruction.json, a chosen folder, or `directory`."""
        if self.filepath:
            path = Path(bpy.path.abspath(self.filepath))
            return path if path.is_dir() or path.name != JSON_NAME else path.parent
        if self.directory:
            return Path(bpy.path.abspath(self.directory))
        raise Geo4DError(f"No result chosen: pick the {JSON_NAME} of a Geo4D result folder.")

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            options = ImportOptions(
                frame_start=self.frame_start,
                storage=self.storage,
                point_size=self.point_size,
                point_radius=self.point_radius,
                points=self.points,
            )
            imported = import_result(self.result_folder(), options, context.scene)
        except SettingError as error:  # the fields are the operator's property names
            self.report({"ERROR"}, error.named(error.field))
            return {"CANCELLED"}
        except (Geo4DError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        for warning in imported.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported {imported.collection.name} ({self.storage.lower()}).")
        return {"FINISHED"}

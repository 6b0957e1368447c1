"""Properties the panel edits and shows: per-scene reconstruction settings and last run, per-session progress."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .import_options import MAX_FRAME
from .setting_properties import setting_property

STORAGE_ITEMS = (
    ("STREAMED", "Streamed", "Read each frame's points from the result folder (small .blend)"),
    ("PACKED", "Packed", "Store every point inside the .blend (portable, large)"),
)
POINTS_ITEMS = (
    (
        "SPLIT",
        "Set and Moving",
        "Reconstruct with split points and import the static set as one object and the moving points "
        "animated (only they are read per frame)",
    ),
    ("FULL", "Every Frame", "One animated cloud of every frame's points"),
)
MODEL_ITEMS = (
    ("TINY", "Tiny (embedded)", "The small model shipped with the add-on: fast, rough"),
    (
        "CHECKPOINT",
        "Checkpoint",
        "The checkpoint chosen in the add-on preferences (the published Geo4D weights)",
    ),
)
PREFERENCE_ITEMS = (("PREFERENCES", "From Preferences", "Use the add-on preferences' setting"),)

# One definition of each setting that the panel and the operators share (Blender evaluates a deferred
# property per class, so one definition serves several classes); the reconstruction settings' come from
# their specs in core/settings.py.
STRIDE = setting_property("stride")
STEPS = setting_property("steps", soft_max=50)
DEVICE = setting_property("device", PREFERENCE_ITEMS)
PRECISION = setting_property("precision", PREFERENCE_ITEMS)
USE_STRIP_RANGE = BoolProperty(
    name="Whole Strip", description="Reconstruct every visible frame of the strip", default=True
)
FRAME_FIRST = IntProperty(
    name="First Frame",
    description="First timeline frame to reconstruct (when Whole Strip is off)",
    default=1,
    min=0,
    max=MAX_FRAME,
)
FRAME_LAST = IntProperty(
    name="Last Frame",
    description="Last timeline frame to reconstruct (when Whole Strip is off)",
    default=16,
    min=0,
    max=MAX_FRAME,
)
POINTS_PER_FRAME = setting_property("max_points_per_frame")
STORAGE = EnumProperty(
    name="Storage",
    description="How the point cloud is kept in the .blend",
    items=STORAGE_ITEMS,
    default="STREAMED",
)
POINTS = EnumProperty(
    name="Points",
    description="The static set apart from what moves, or every frame whole",
    items=POINTS_ITEMS,
    default="FULL",
)
SEED = setting_property("seed")
INPUT_SIZE = setting_property("size")
POINT_SIZE = FloatProperty(
    name="Point Size",
    description="Point diameter in pixels of the footage, seen from that frame's camera",
    default=1.0,
    min=0.01,
    max=1000.0,
)


class Geo4DSceneSettings(bpy.types.PropertyGroup):
    """What the panel's Reconstruct button passes to geo4d.reconstruct_strip, and the last run's summary."""

    model: EnumProperty(
        name="Model", description="Which Geo4D weights reconstruct the strip", items=MODEL_ITEMS
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
    last_summary: StringProperty(
        name="Last Run", description="What the last reconstruction of this scene produced"
    )
    last_warnings: StringProperty(name="Warnings", description="Warnings of the last reconstruction")


class Geo4DProgress(bpy.types.PropertyGroup):
    """The running job as the panel shows it (not saved in the .blend)."""

    running: BoolProperty(name="Running", description="A reconstruction is running", options={"SKIP_SAVE"})
    fraction: FloatProperty(
        name="Progress",
        description="Progress of the current stage",
        subtype="FACTOR",
        min=0.0,
        max=1.0,
        options={"SKIP_SAVE"},
    )
    text: StringProperty(name="Status", description="What the worker is doing", options={"SKIP_SAVE"})
    strip: StringProperty(name="Strip", description="The strip being reconstructed", options={"SKIP_SAVE"})


PROPERTY_GROUPS = (Geo4DSceneSettings, Geo4DProgress)


def register() -> None:
    bpy.types.Scene.geo4d = PointerProperty(type=Geo4DSceneSettings)
    bpy.types.WindowManager.geo4d_progress = PointerProperty(type=Geo4DProgress)


def unregister() -> None:
    del bpy.types.WindowManager.geo4d_progress
    del bpy.types.Scene.geo4d

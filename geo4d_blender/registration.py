"""Registration in one place: one ordered tuple of classes, and unregister() undoes register()."""

import bpy

from . import preference_tasks, properties, save_paths, streamed_check, strip_job
from .operators.cancel import GEO4D_OT_cancel
from .operators.environment_setup import (
    GEO4D_OT_cancel_preferences_task,
    GEO4D_OT_convert_checkpoint,
    GEO4D_OT_setup_environment,
)
from .operators.import_result import GEO4D_OT_import_result
from .operators.reconstruct_strip import GEO4D_OT_reconstruct_strip
from .preferences import GEO4D_OT_check_setup, Geo4DPreferences
from .ui import menus
from .ui.panels import PANELS

# Property groups before the classes that point to them; parent panels before their sub-panels.
CLASSES: tuple = (
    Geo4DPreferences,
    GEO4D_OT_check_setup,
    GEO4D_OT_setup_environment,
    GEO4D_OT_convert_checkpoint,
    GEO4D_OT_cancel_preferences_task,
    *properties.PROPERTY_GROUPS,
    GEO4D_OT_import_result,
    GEO4D_OT_reconstruct_strip,
    GEO4D_OT_cancel,
    *PANELS,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register()
    menus.register()
    save_paths.register()
    streamed_check.register()
    strip_job.register()


def unregister() -> None:
    preference_tasks.stop_all()
    strip_job.unregister()
    streamed_check.unregister()
    save_paths.unregister()
    menus.unregister()
    properties.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

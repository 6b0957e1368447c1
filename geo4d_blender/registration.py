"""Registration in one place: one ordered tuple of classes, and unregister() undoes register()."""

import bpy

from .operators.import_result import GEO4D_OT_import_result
from .ui import menus

CLASSES: tuple = (GEO4D_OT_import_result,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    menus.register()


def unregister() -> None:
    menus.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

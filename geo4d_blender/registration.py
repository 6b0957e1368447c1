"""Registration in one place: one ordered tuple of classes, and unregister() undoes register()."""

import bpy

CLASSES: tuple = ()


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

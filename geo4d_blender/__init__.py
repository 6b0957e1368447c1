"""Geo4D for Blender: reconstruct a movie strip into an animated point cloud and a matching camera.

Importing this package does not import bpy, so `python -m geo4d` and the worker process stay light;
register() pulls in the Blender side.
"""


def register() -> None:
    from .registration import register as register_classes

    register_classes()


def unregister() -> None:
    from .registration import unregister as unregister_classes

    unregister_classes()

"""Geo4D for Blender: reconstruct a movie strip into an animated point cloud and a matching camera.

Importing this package does not import bpy, so `python -m geo4d` and the worker process stay light;
register() pulls in the Blender side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import bpy

    from .scene_builder import ImportedResult


def reconstruct_strip(
    scene: bpy.types.Scene, strip: bpy.types.Strip | str, **settings: Any
) -> ImportedResult:
    """Reconstruct a movie strip of `scene` and import the result on its frames; see batch.reconstruct_strip."""
    from .batch import reconstruct_strip as reconstruct

    return reconstruct(scene, strip, **settings)


def register() -> None:
    from .registration import register as register_classes

    register_classes()


def unregister() -> None:
    from .registration import unregister as unregister_classes

    unregister_classes()

"""The scripting entry point `geo4d.reconstruct_strip(scene, strip, **settings)`: no operator context needed."""

from __future__ import annotations

import bpy

from .core.errors import Geo4DError, SettingError
from .scene_builder import ImportedResult
from .strip_job import StripJob, StripSettings
from .strips import find_strip


def reconstruct_strip(scene: bpy.types.Scene, strip: bpy.types.Strip | str, **settings) -> ImportedResult:
    """Reconstruct `strip` (a movie strip or its name) of `scene` and import it on the strip's frames.

    Blocks until done. `settings` are the fields of StripSettings (model, stride, steps, device, precision,
    frame_range, points_per_frame, storage, seed, point_size, result_folder, worker_python, timeout, size).
    Raises Geo4DError (or its subclass Cancelled) with a message saying what to do; on any failure the
    scene is left as it was.
    """
    try:
        options = StripSettings(**settings)
    except SettingError as error:  # its field is the keyword the caller typed
        raise Geo4DError(f"geo4d.reconstruct_strip: {error.named(error.field)}") from error
    except TypeError as error:
        raise Geo4DError(f"Invalid setting for geo4d.reconstruct_strip: {error}") from error
    if not isinstance(scene, bpy.types.Scene):
        raise Geo4DError(
            f"geo4d.reconstruct_strip: scene = {scene!r} is not a scene; give e.g. bpy.context.scene."
        )
    if isinstance(strip, str):
        strip = find_strip(scene, strip)
    return StripJob(scene, strip, options).run()

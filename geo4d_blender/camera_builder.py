"""The Blender camera of a reconstruction: intrinsics as lens and shift, one pose key per frame, the footage."""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .blend_paths import blend_path
from .blender_compat import new_fcurve
from .core.camera import MAX_PIXEL_ASPECT, BlenderIntrinsics, blender_camera_matrix, blender_intrinsics
from .core.errors import Geo4DError
from .import_options import ImportOptions
from .owned_data import ROLE_TAG, OwnedData

logger = logging.getLogger(__name__)


def check_intrinsics(description: dict, path: Path) -> None:
    """Refuse intrinsics the Blender camera cannot reproduce: unreadable, non-positive focals, or pixels
    more than MAX_PIXEL_ASPECT times wider than tall (or taller than wide), Blender's pixel-aspect limit."""
    k = description["intrinsics"]
    try:
        fx, fy, cx, cy = (float(k[name]) for name in ("fx", "fy", "cx", "cy"))
    except (KeyError, TypeError, ValueError) as error:
        raise Geo4DError(
            f"{path} has unreadable intrinsics {k!r}: it needs numbers fx, fy, cx, cy."
        ) from error
    if not np.isfinite([fx, fy, cx, cy]).all() or fx <= 0 or fy <= 0:
        raise Geo4DError(f"{path} has invalid intrinsics {k}: they must be finite with positive focals.")
    if max(fx / fy, fy / fx) > MAX_PIXEL_ASPECT:
        raise Geo4DError(
            f"{path} has fx={fx} and fy={fy}: Blender's pixel aspect reaches at most {MAX_PIXEL_ASPECT:g}, "
            "so it cannot show pixels that far from square. Check the calibration's focal lengths."
        )


def camera_intrinsics(description: dict, sensor_width: float) -> BlenderIntrinsics:
    """Lens, shift and the scene's pixel aspect that reproduce the result's fx, fy, cx, cy (sensor_fit AUTO)."""
    k = description["intrinsics"]
    return blender_intrinsics(
        k["fx"], k["fy"], k["cx"], k["cy"], description["width"], description["height"], sensor_width
    )


def camera_matrices(description: dict, world: np.ndarray) -> np.ndarray:
    """Blender matrix_world of every frame's camera [T, 4, 4], after the world change `world` [4, 4]."""
    camera_to_world = np.asarray(description["camera_to_world"], dtype=np.float64)
    return world @ blender_camera_matrix(camera_to_world)


def build_camera(
    name: str,
    description: dict,
    folder: Path,
    world: np.ndarray,
    clip_range: tuple[float, float],
    options: ImportOptions,
    owned: OwnedData,
) -> tuple[bpy.types.Object, list[str]]:
    """A camera object keyed at timeline frames F..F+T-1, and warnings about its background footage.

    The camera matches the intrinsics only under the scene's pixel aspect of camera_intrinsics (the
    importer sets it). clip_range: (clip_start, clip_end) in scene units, chosen from the scene's extent.
    """
    data = owned.add(bpy.data.cameras.new(name), name)
    data.sensor_fit = "AUTO"
    intrinsics = camera_intrinsics(description, data.sensor_width)
    data.lens = intrinsics.lens
    data.shift_x, data.shift_y = intrinsics.shift_x, intrinsics.shift_y
    data.clip_start, data.clip_end = clip_range
    camera = owned.add(bpy.data.objects.new(name, data), name)
    camera[ROLE_TAG] = "camera"
    _key_poses(camera, f"{name} motion", camera_matrices(description, world), options.frame_start, owned)
    warnings = _add_footage(data, description, folder, options, owned)
    return camera, warnings


def _key_poses(
    camera: bpy.types.Object, action_name: str, matrices: np.ndarray, frame_start: int, owned: OwnedData
) -> None:
    """Location and quaternion keys at every frame, written in bulk (one fcurve per channel, linear)."""
    camera.rotation_mode = "QUATERNION"
    camera.matrix_world = Matrix(matrices[0].tolist())
    quaternions = np.empty((len(matrices), 4))
    previous = None
    for index, matrix in enumerate(matrices):
        quaternion = Matrix(matrix[:3, :3].tolist()).to_quaternion()
        if previous is not None:
            quaternion.make_compatible(previous)
        quaternions[index] = quaternion
        previous = quaternion
    frames = np.arange(frame_start, frame_start + len(matrices), dtype=np.float64)
    action = owned.add(bpy.data.actions.new(action_name), action_name)
    camera.animation_data_create().action = action
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    channels = [("location", i, matrices[:, i, 3]) for i in range(3)]
    channels += [("rotation_quaternion", i, quaternions[:, i]) for i in range(4)]
    for data_path, index, values in channels:
        curve = new_fcurve(action, camera, data_path, index, "Object Transforms")
        curve.keyframe_points.add(len(frames))
        curve.keyframe_points.foreach_set(
            "co", np.stack([frames, values], axis=-1).astype(np.float32).ravel()
        )
        curve.keyframe_points.foreach_set("interpolation", np.full(len(frames), linear, dtype=np.int32))
        curve.update()


def _add_footage(
    data: bpy.types.Camera, description: dict, folder: Path, options: ImportOptions, owned: OwnedData
) -> list[str]:
    """Show the source video behind the camera view, timed so that frame F + k shows result frame k."""
    video = description["source"].get("video")
    if not video:
        return []
    path = (folder / video).resolve()
    if not path.is_file():
        return [f"The source video {path} is missing; the camera has no background footage."]
    try:
        clip = owned.add(bpy.data.movieclips.load(str(path)), path.name)
    except RuntimeError as error:
        return [
            f"Blender cannot open the source video {path} ({error}); the camera has no background footage."
        ]
    clip.filepath = blend_path(path, options.relative_to)
    source_frames = np.asarray(description["source"]["frames"], dtype=np.int64)
    # Clip frame 1 shows at scene frame clip.frame_start; source frame s (0-based) is clip frame s + 1.
    clip.frame_start = options.frame_start - int(source_frames[0])
    warnings = []
    if len(source_frames) > 1 and not np.all(np.diff(source_frames) == 1):
        warnings.append(
            "The result covers non-consecutive video frames; the background footage does not follow them."
        )
    data.show_background_images = True
    background = data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.frame_method = "CROP"  # core.video scales to cover, then crops the centre
    background.alpha = 1.0
    return warnings

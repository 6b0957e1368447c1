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
from .core.result_description import ResultDescription
from .import_options import ImportOptions
from .owned_data import ROLE_TAG, OwnedData

logger = logging.getLogger(__name__)


def check_intrinsics(description: ResultDescription, path: Path) -> None:
    """Refuse what the Blender camera cannot reproduce exactly: pixels more than MAX_PIXEL_ASPECT times
    wider than tall (or taller than wide), a lens below Blender's shortest, a resolution below Blender's
    smallest (Blender would clamp them without a word)."""
    k = description.intrinsics
    if max(k.fx / k.fy, k.fy / k.fx) > MAX_PIXEL_ASPECT:
        raise Geo4DError(
            f"{path} has fx={k.fx} and fy={k.fy}: Blender's pixel aspect reaches at most {MAX_PIXEL_ASPECT:g}, "
            "so it cannot show pixels that far from square. Check the calibration's focal lengths."
        )
    camera = bpy.types.Camera.bl_rna.properties
    lens = camera_intrinsics(description, camera["sensor_width"].default).lens
    if lens < camera["lens"].hard_min:
        raise Geo4DError(
            f"{path} has intrinsics.fx={k.fx}, a lens of {lens:.3g} mm: below Blender's shortest, "
            f"{camera['lens'].hard_min:g} mm (a field of view near 180 degrees). Fix the file or reconstruct again."
        )
    smallest = bpy.types.RenderSettings.bl_rna.properties["resolution_x"].hard_min
    if min(description.width, description.height) < smallest:
        raise Geo4DError(
            f"{path} describes {description.width}x{description.height} pixels; Blender renders at least "
            f"{smallest} pixels a side. Reconstruct at a larger size."
        )


def camera_intrinsics(description: ResultDescription, sensor_width: float) -> BlenderIntrinsics:
    """Lens, shift and the scene's pixel aspect that reproduce the result's fx, fy, cx, cy (sensor_fit AUTO)."""
    k = description.intrinsics
    return blender_intrinsics(k.fx, k.fy, k.cx, k.cy, description.width, description.height, sensor_width)


def camera_matrices(description: ResultDescription, world: np.ndarray) -> np.ndarray:
    """Blender matrix_world of every frame's camera [T, 4, 4], after the world change `world` [4, 4]."""
    return world @ blender_camera_matrix(description.camera_to_world)


def build_camera(
    name: str,
    description: ResultDescription,
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
    data: bpy.types.Camera,
    description: ResultDescription,
    folder: Path,
    options: ImportOptions,
    owned: OwnedData,
) -> list[str]:
    """Show the source video behind the camera view, timed so that frame F + k shows result frame k."""
    video = description.source_video
    if video is None:
        return []
    path = folder / video
    try:
        path = path.resolve(strict=True)
        usable = path.is_file()
    except (OSError, RuntimeError):  # missing, a link loop (RuntimeError before Python 3.13), unreadable
        usable = False
    if not usable:
        return [f"The source video {path} is missing; the camera has no background footage."]
    try:
        clip = bpy.data.movieclips.load(str(path))
    except RuntimeError as error:
        return [
            f"Blender cannot open the source video {path} ({error}); the camera has no background footage."
        ]
    # Blender loads any file as a clip; one it cannot decode has no frames (and a placeholder size).
    if clip.frame_duration <= 0 or 0 in clip.size:
        bpy.data.movieclips.remove(clip)
        return [
            f"Blender cannot read frames from the source video {path}; the camera has no background footage."
        ]
    owned.add(clip, path.name)
    clip.filepath = blend_path(path, options.relative_to)
    source_frames = np.asarray(description.source_frames, dtype=np.int64)
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

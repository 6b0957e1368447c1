"""Import a reconstruction folder into a Blender scene: camera, point cloud, collection, scene settings.

A split result (static.ply beside frames of moving points) imported with points "SPLIT" gets a static
`Set` object and an animated `Moving` object instead of the one animated cloud.

All or nothing: every data-block is created first and removed again if anything fails; only then is the
previous import of the same result replaced and the scene's resolution, fps and frame range set.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from .blender_compat import STREAMED_SINCE, streamed_points_supported
from .camera_builder import build_camera, camera_intrinsics, check_intrinsics
from .core.camera import blender_world_from
from .core.errors import Geo4DError
from .core.result import JSON_NAME, read_description, read_frame_points, read_static_points
from .core.result_description import ResultDescription
from .import_options import MAX_FRAME, ImportOptions
from .owned_data import OwnedData, find_owned, remove_blocks
from .point_cloud_builder import build_point_cloud, build_static_set, check_frames, read_all_points

logger = logging.getLogger(__name__)

# Clip distances when the first frame holds no point to measure the scene by.
_DEFAULT_CLIP_RANGE = (0.1, 1000.0)


@dataclass
class ImportedResult:
    """What an import made: the objects, their collection, and warnings to show the user. points is the
    animated cloud (`Moving` of a split import); static is the split import's `Set`, else None."""

    camera: bpy.types.Object
    points: bpy.types.Object
    collection: bpy.types.Collection
    warnings: list[str] = field(default_factory=list)
    static: bpy.types.Object | None = None


def result_key(folder: str | Path) -> str:
    """The value our data-blocks are tagged with: the result folder's absolute path."""
    return str(Path(folder).resolve())


def import_result(
    folder: str | Path, options: ImportOptions | None = None, scene: bpy.types.Scene | None = None
) -> ImportedResult:
    """Build the camera and point cloud of the result in `folder` into `scene` (default: the context's).

    Raises Geo4DError for a missing, damaged or inconsistent result; the file is then left as it was.
    """
    options = options or ImportOptions()
    scene = scene or bpy.context.scene
    folder = Path(result_key(folder))
    options, storage_warnings = _supported_storage(options)
    description = read_description(folder)
    json_path = folder / JSON_NAME
    frame_count = description.num_frames
    if options.frame_start + frame_count - 1 > MAX_FRAME:
        raise Geo4DError(
            f"Frames {options.frame_start}..{options.frame_start + frame_count - 1} pass Blender's "
            f"last frame {MAX_FRAME}. Choose an earlier start frame."
        )
    check_intrinsics(description, json_path)
    camera_to_world = description.camera_to_world
    if options.storage == "STREAMED":
        check_frames(folder, frame_count)
        frames = None
        first_points = read_frame_points(folder, 0)
    else:
        frames = read_all_points(folder, frame_count)
        first_points = frames[0]
    split, point_warnings = _point_mode(description, options)
    static = read_static_points(folder) if split else None  # checked before anything is built
    world = blender_world_from(camera_to_world[0])
    clip_range = _clip_range(first_points if static is None else static, camera_to_world[0])

    name = f"Geo4D {folder.name}"
    previous = find_owned(str(folder), scene)  # this scene's import; a copied scene keeps its own
    owned = OwnedData(str(folder))
    try:
        collection = owned.add(bpy.data.collections.new(name), name)
        camera, warnings = build_camera(
            f"{name} camera", description, folder, world, clip_range, options, owned
        )
        cloud_name = f"{name} Moving" if split else f"{name} points"
        points = build_point_cloud(cloud_name, description, folder, world, camera, frames, options, owned)
        static_set = None
        if split:
            static_set = build_static_set(f"{name} Set", static, description, world, camera, options, owned)
        collection.objects.link(camera)
        collection.objects.link(points)
        if static_set is not None:
            collection.objects.link(static_set)
        scene.collection.children.link(collection)
    except BaseException:
        owned.remove_all()
        raise
    remove_blocks(previous, only_unused=True)
    owned.settle_names()
    _set_scene(scene, description, camera, options)
    warnings = storage_warnings + point_warnings + warnings
    for warning in warnings:
        logger.warning(warning)
    logger.info(
        "Imported %d frames of %s (%s) at frame %d.",
        frame_count,
        folder,
        options.storage,
        options.frame_start,
    )
    return ImportedResult(camera, points, collection, warnings, static_set)


def _point_mode(description: ResultDescription, options: ImportOptions) -> tuple[bool, list[str]]:
    """Whether to build Set and Moving, and a warning when the choice and the result do not match."""
    if options.points == "SPLIT" and not description.split:
        return False, [
            "This result has no static cloud (it was reconstructed with full frames): imported as one animated "
            "cloud. Reconstruct with split points to get a Set and a Moving object."
        ]
    if options.points == "FULL" and description.split:
        return False, [
            "This result's frames hold only the moving points; the static set is in static.ply. Import with "
            "Points: Split to see the set."
        ]
    return description.split, []


def _supported_storage(options: ImportOptions) -> tuple[ImportOptions, list[str]]:
    """The options this Blender can build, and a warning when streamed storage has to become packed."""
    if options.storage != "STREAMED" or streamed_points_supported():
        return options, []
    warning = (
        f"Blender {bpy.app.version_string} cannot stream points from the result folder (that needs "
        f"Blender {STREAMED_SINCE} or later): they are packed into the .blend instead."
    )
    return dataclasses.replace(options, storage="PACKED"), [warning]


def _clip_range(points: np.ndarray, camera_to_world: np.ndarray) -> tuple[float, float]:
    """Camera clip distances that hold the scene: from the first frame's nearest and farthest points."""
    if len(points) == 0:
        return _DEFAULT_CLIP_RANGE
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1).astype(np.float64)
    distance = np.linalg.norm(xyz - camera_to_world[:3, 3], axis=-1)
    near, far = float(distance.min()), float(distance.max())
    if not np.isfinite([near, far]).all() or far <= 0:
        return _DEFAULT_CLIP_RANGE
    clip_start = max(0.1 * near, 1e-3 * far, 1e-6)
    return clip_start, max(10.0 * far, 100.0 * clip_start)


def _set_scene(
    scene: bpy.types.Scene, description: ResultDescription, camera: bpy.types.Object, options: ImportOptions
) -> None:
    """Resolution, pixel aspect, fps and frame range of the footage; our camera becomes the scene camera."""
    render = scene.render
    render.resolution_x, render.resolution_y = description.width, description.height
    render.resolution_percentage = 100
    intrinsics = camera_intrinsics(description, camera.data.sensor_width)
    render.pixel_aspect_x, render.pixel_aspect_y = intrinsics.pixel_aspect_x, intrinsics.pixel_aspect_y
    render.fps = max(1, round(description.fps))
    render.fps_base = render.fps / description.fps
    scene.frame_start = options.frame_start
    scene.frame_end = options.frame_start + description.num_frames - 1
    scene.camera = camera
    # The footage's own colours: no tone mapping of the unlit point colours.
    scene.view_settings.view_transform = "Standard"

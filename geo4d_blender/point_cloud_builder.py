"""The point cloud objects of a reconstruction: the animated cloud (streamed from its PLY files or packed into
the .blend) and, for a split result, the static set (packed)."""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix
from numpy.lib.recfunctions import structured_to_unstructured

from .blend_paths import blend_folder_path
from .core.ply import read_points
from .core.result import frame_file_name, read_frame_points
from .core.result_description import ResultDescription
from .import_options import ImportOptions
from .owned_data import ROLE_TAG, OwnedData
from .point_nodes import (
    COLOR_ATTRIBUTE,
    FRAME_ATTRIBUTE,
    build_point_material,
    build_point_nodes,
)

logger = logging.getLogger(__name__)

# Name of the geometry-nodes modifier that shows the current frame's points.
FRAMES_MODIFIER = "Geo4D frames"


def check_frames(folder: Path, frame_count: int) -> None:
    """Check the PLY of every frame 0..frame_count-1 in `folder` (header, size, finite coordinates; about
    0.2 s per 10 M points from a warm disk), one at a time; Geo4DError names the first bad one."""
    for index in range(frame_count):
        read_points(folder / frame_file_name(index))


def read_all_points(folder: Path, frame_count: int) -> list[np.ndarray]:
    """Every frame's structured point array (x y z red green blue, optionally confidence), all files checked."""
    return [read_frame_points(folder, index) for index in range(frame_count)]


def build_point_cloud(
    name: str,
    description: ResultDescription,
    folder: Path,
    world: np.ndarray,
    camera: bpy.types.Object,
    frames: list[np.ndarray] | None,
    options: ImportOptions,
    owned: OwnedData,
) -> bpy.types.Object:
    """An object that shows result frame k's points at timeline frame F + k.

    Points keep the result's world coordinates; the object's matrix_world is the world change `world`.
    frames: every frame's points for the packed mode (read_all_points), None for the streamed mode.
    """
    points, tree = _point_object(name, options.storage, frames, world, owned, "points")
    modifier = points.modifiers.new(FRAMES_MODIFIER, "NODES")
    modifier.node_group = tree
    inputs = {
        "Folder": blend_folder_path(folder, options.relative_to),
        "First Frame": options.frame_start,
        "Frame Count": description.num_frames,
        "Camera": camera,
        "Focal": description.intrinsics.fx,
        "Point Size": options.point_size,
        "Point Radius": options.point_radius,
    }
    _set_inputs(modifier, inputs)
    return points


def build_static_set(
    name: str,
    static: np.ndarray,
    description: ResultDescription,
    world: np.ndarray,
    camera: bpy.types.Object,
    options: ImportOptions,
    owned: OwnedData,
) -> bpy.types.Object:
    """The static set of a split result: static.ply's points `static` (structured) packed into one object
    shown at every frame, sized by the same rule as the animated cloud."""
    points, tree = _point_object(name, "STATIC", [static], world, owned, "set")
    modifier = points.modifiers.new(FRAMES_MODIFIER, "NODES")
    modifier.node_group = tree
    inputs = {
        "Camera": camera,
        "Focal": description.intrinsics.fx,
        "Point Size": options.point_size,
        "Point Radius": options.point_radius,
    }
    _set_inputs(modifier, inputs)
    return points


def _point_object(
    name: str, storage: str, frames: list[np.ndarray] | None, world: np.ndarray, owned: OwnedData, role: str
) -> tuple[bpy.types.Object, bpy.types.NodeTree]:
    """A mesh object (points packed unless streamed) with its point material, and its node group."""
    mesh = owned.add(bpy.data.meshes.new(name), name)
    if storage != "STREAMED":
        _pack_points(mesh, frames)
    material = owned.add(build_point_material(f"{name} colour"), f"{name} colour")
    mesh.materials.append(material)
    tree = owned.add(build_point_nodes(f"{name} frames", storage, material), f"{name} frames")
    points = owned.add(bpy.data.objects.new(name, mesh), name)
    points[ROLE_TAG] = role
    points.matrix_world = Matrix(world.tolist())
    return points, tree


def _set_inputs(modifier: bpy.types.NodesModifier, inputs: dict) -> None:
    """Set the modifier's node-group inputs by socket name."""
    for item in modifier.node_group.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name in inputs:
            modifier[item.identifier] = inputs[item.name]


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Linear floats of 8-bit sRGB values (the IEC 61966-2-1 curve Blender uses for byte colours)."""
    srgb = np.asarray(values, dtype=np.float64) / 255.0
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


# Linear value of each 8-bit sRGB level; colours are looked up, not recomputed per point.
_SRGB_TO_LINEAR = srgb_to_linear(np.arange(256))


def _pack_points(mesh: bpy.types.Mesh, frames: list[np.ndarray]) -> None:
    """All frames' points as vertices with position, linear colour (as the PLY importer yields), confidence
    and the int `frame` attribute the node group filters on. Filled frame by frame into flat arrays."""
    counts = np.array([len(points) for points in frames], dtype=np.int64)
    total = int(counts.sum())
    mesh.vertices.add(total)
    if total == 0:
        return
    xyz = np.empty((total, 3), dtype=np.float32)
    rgba = np.ones((total, 4), dtype=np.float32)
    confidence = np.ones(total, dtype=np.float32)
    frame_index = np.empty(total, dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for index, (points, start, end) in enumerate(zip(frames, starts[:-1], starts[1:], strict=True)):
        frame_index[start:end] = index
        xyz[start:end] = structured_to_unstructured(points[["x", "y", "z"]])
        for channel, name in enumerate(("red", "green", "blue")):
            rgba[start:end, channel] = _SRGB_TO_LINEAR[points[name]]
        if "confidence" in points.dtype.names:
            confidence[start:end] = points["confidence"]
    mesh.attributes["position"].data.foreach_set("vector", xyz.ravel())
    mesh.attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT").data.foreach_set("color", rgba.ravel())
    mesh.attributes.new("confidence", "FLOAT", "POINT").data.foreach_set("value", confidence)
    mesh.attributes.new(FRAME_ATTRIBUTE, "INT", "POINT").data.foreach_set("value", frame_index)

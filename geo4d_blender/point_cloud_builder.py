"""The animated point cloud object of a reconstruction, streamed from its PLY files or packed into the .blend."""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .blend_paths import blend_folder_path
from .core.errors import Geo4DError
from .core.result import read_frame_points
from .import_options import ImportOptions
from .owned_data import ROLE_TAG, OwnedData
from .point_nodes import (
    COLOR_ATTRIBUTE,
    FRAME_ATTRIBUTE,
    FRAME_FILE_FORMAT,
    build_point_material,
    build_point_nodes,
)

logger = logging.getLogger(__name__)


def check_frame_files(description: dict, path: Path) -> None:
    """The streamed mode finds frame k's file by its number: the files must follow the standard names."""
    for index, name in enumerate(description["frames"]):
        if name != FRAME_FILE_FORMAT.format(index=index):
            raise Geo4DError(
                f"{path} lists frame file {name!r} for frame {index}, expected "
                f"{FRAME_FILE_FORMAT.format(index=index)!r}. Import with storage 'PACKED' or rewrite the result."
            )


def read_all_points(folder: Path, frame_count: int) -> list[np.ndarray]:
    """Every frame's structured point array (x y z red green blue confidence), all files checked."""
    frames = [read_frame_points(folder, index) for index in range(frame_count)]
    for index, points in enumerate(frames):
        missing = {"x", "y", "z", "red", "green", "blue"} - set(points.dtype.names)
        if missing:
            raise Geo4DError(
                f"{folder} frame {index}: the PLY lacks {', '.join(sorted(missing))}. Reconstruct again."
            )
    return frames


def build_point_cloud(
    name: str,
    description: dict,
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
    mesh = owned.add(bpy.data.meshes.new(name), name)
    if options.storage == "PACKED":
        _pack_points(mesh, frames)
    material = owned.add(build_point_material(f"{name} colour"), f"{name} colour")
    mesh.materials.append(material)
    tree = owned.add(build_point_nodes(f"{name} frames", options.storage, material), f"{name} frames")
    points = owned.add(bpy.data.objects.new(name, mesh), name)
    points[ROLE_TAG] = "points"
    points.matrix_world = Matrix(world.tolist())
    modifier = points.modifiers.new("Geo4D frames", "NODES")
    modifier.node_group = tree
    inputs = {
        "Folder": blend_folder_path(folder, options.relative_to),
        "First Frame": options.frame_start,
        "Frame Count": len(description["frames"]),
        "Camera": camera,
        "Focal": float(description["intrinsics"]["fx"]),
        "Point Size": options.point_size,
        "Point Radius": options.point_radius,
    }
    for item in tree.interface.items_tree:
        if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name in inputs:
            modifier[item.identifier] = inputs[item.name]
    return points


def _pack_points(mesh: bpy.types.Mesh, frames: list[np.ndarray]) -> None:
    """All frames' points as vertices with position, byte colour (sRGB, as the PLY importer reads it),
    confidence and the int `frame` attribute the node group filters on."""
    counts = [len(points) for points in frames]
    records = np.concatenate(frames) if frames else np.empty(0)
    mesh.vertices.add(len(records))
    if not len(records):
        return
    xyz = np.stack([records["x"], records["y"], records["z"]], axis=-1).astype(np.float32)
    mesh.attributes["position"].data.foreach_set("vector", xyz.ravel())
    rgba = np.empty((len(records), 4), dtype=np.float32)
    for channel, field in enumerate(("red", "green", "blue")):
        np.divide(records[field], 255.0, out=rgba[:, channel], dtype=np.float32)
    rgba[:, 3] = 1.0
    mesh.attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT").data.foreach_set("color_srgb", rgba.ravel())
    if "confidence" in records.dtype.names:
        confidence = np.ascontiguousarray(records["confidence"], dtype=np.float32)
        mesh.attributes.new("confidence", "FLOAT", "POINT").data.foreach_set("value", confidence)
    frame_index = np.repeat(np.arange(len(frames), dtype=np.int32), counts)
    mesh.attributes.new(FRAME_ATTRIBUTE, "INT", "POINT").data.foreach_set("value", frame_index)

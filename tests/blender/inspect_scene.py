"""Reading back what an import built: our objects, data-block counts, the evaluated point cloud."""

import bpy
import numpy as np

from geo4d.owned_data import ROLE_TAG

DATA_KINDS = (
    "objects",
    "collections",
    "meshes",
    "cameras",
    "actions",
    "node_groups",
    "materials",
    "movieclips",
)


def data_counts() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind)) for kind in DATA_KINDS}


def our_object(role: str) -> bpy.types.Object:
    (found,) = [obj for obj in bpy.data.objects if obj.get(ROLE_TAG) == role]
    return found


def evaluated_points(points: bpy.types.Object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World positions [N, 3], radii [N] and sRGB colours [N, 3] of the evaluated point cloud at this frame."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = points.evaluated_get(depsgraph)
    geometry = evaluated.evaluated_geometry()  # owns the point cloud: keep it referenced while reading
    cloud = geometry.pointcloud
    if cloud is None:
        return np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3))
    count = len(cloud.points)
    local = np.empty(count * 3, dtype=np.float32)
    cloud.attributes["position"].data.foreach_get("vector", local)
    radius = np.empty(count, dtype=np.float32)
    cloud.attributes["radius"].data.foreach_get("value", radius)
    color = np.empty(count * 4, dtype=np.float32)
    cloud.attributes["Col"].data.foreach_get("color_srgb", color)
    matrix = np.array(evaluated.matrix_world)
    world = local.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return world, radius, color.reshape(-1, 4)[:, :3]

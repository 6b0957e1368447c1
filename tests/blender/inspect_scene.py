"""Reading back what an import built: our objects, data-block counts, the evaluated point cloud."""

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from geo4d.blender_compat import read_evaluated_point_cloud
from geo4d.core.result import Reconstruction
from geo4d.owned_data import OWNED_KINDS, ROLE_TAG


def data_counts() -> dict[str, int]:
    return {kind: len(getattr(bpy.data, kind)) for kind in OWNED_KINDS}


def our_object(role: str) -> bpy.types.Object:
    (found,) = [obj for obj in bpy.data.objects if obj.get(ROLE_TAG) == role]
    return found


def evaluated_points(points: bpy.types.Object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World positions [N, 3], radii [N] and sRGB colours [N, 3] of the evaluated point cloud at this frame."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    read = read_evaluated_point_cloud(points, depsgraph, _read_cloud)
    if read is None:
        return np.zeros((0, 3)), np.zeros(0), np.zeros((0, 3))
    local, radius, color = read
    matrix = np.array(points.evaluated_get(depsgraph).matrix_world)
    world = local.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return world, radius, color


def _read_cloud(cloud: bpy.types.PointCloud) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local positions [N, 3], radii [N] and sRGB colours [N, 3] of an evaluated point cloud."""
    count = len(cloud.points)
    local = np.empty(count * 3, dtype=np.float32)
    cloud.attributes["position"].data.foreach_get("vector", local)
    radius = np.empty(count, dtype=np.float32)
    cloud.attributes["radius"].data.foreach_get("value", radius)
    color = np.empty(count * 4, dtype=np.float32)
    cloud.attributes["Col"].data.foreach_get("color_srgb", color)
    return local.reshape(-1, 3), radius, color.reshape(-1, 4)[:, :3]


def project_with_blender(camera: bpy.types.Object, world: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates (u right, v down) [N, 2] through Blender's own camera projection matrix, under the
    scene's pixel aspect."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = camera.evaluated_get(depsgraph)
    render = bpy.context.scene.render
    projection = np.array(
        evaluated.calc_matrix_camera(
            depsgraph, x=width, y=height, scale_x=render.pixel_aspect_x, scale_y=render.pixel_aspect_y
        )
    )
    view = np.array(evaluated.matrix_world.inverted())
    clip = np.concatenate([world, np.ones((len(world), 1))], axis=-1) @ (projection @ view).T
    ndc = clip[:, :2] / clip[:, 3:]
    return np.stack([(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height], axis=-1)


def check_projection(truth: Reconstruction, frame_start: int, point_size: float = 1.0) -> None:
    """THE exactness check on the open file: every point of frame k, projected through the scene camera at
    timeline frame F + k, lands on the centre of the pixel it came from within 1e-3 pixel (Blender's own
    projection matrix for all points, world_to_camera_view for a sample); colours and radii match too."""
    scene = bpy.context.scene
    camera, points = our_object("camera"), our_object("points")
    width, height = truth.width, truth.height
    assert (scene.render.resolution_x, scene.render.resolution_y) == (width, height)
    assert (scene.frame_start, scene.frame_end) == (frame_start, frame_start + truth.num_frames - 1)
    assert scene.camera == camera
    focal = truth.intrinsics.fx
    for k in range(truth.num_frames):
        scene.frame_set(frame_start + k)
        world, radius, color = evaluated_points(points)
        rows, cols = np.nonzero(truth.valid_mask()[k])
        assert len(world) == len(rows)
        pixels = project_with_blender(camera, world, width, height)
        np.testing.assert_allclose(pixels, np.stack([cols + 0.5, rows + 0.5], axis=-1), rtol=0, atol=1e-3)
        for index in range(0, len(world), 97):
            x, y, _ = world_to_camera_view(scene, camera, Vector(world[index]))
            assert abs(x * width - (cols[index] + 0.5)) < 1e-3
            assert abs((1 - y) * height - (rows[index] + 0.5)) < 1e-3
        np.testing.assert_allclose(color * 255, truth.color[k, rows, cols], atol=0.51)
        distance = np.linalg.norm(world - np.array(camera.matrix_world.translation), axis=-1)
        np.testing.assert_allclose(radius, point_size / 2 * distance / focal, rtol=1e-4)
    for outside in (frame_start - 1, frame_start + truth.num_frames):
        if outside < 0:
            continue
        scene.frame_set(outside)
        assert len(evaluated_points(points)[0]) == 0

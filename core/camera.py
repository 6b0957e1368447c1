"""Camera conventions in one place: pixel centres, unprojection, OpenCV <-> Blender, lens in millimetres.

Cameras are OpenCV (x right, y down, z forward); `camera_to_world` maps camera to world coordinates.
Pixel (row i, column j) covers [j, j+1] x [i, i+1], so its centre is (j + 0.5, i + 0.5) and a centred
principal point is (W/2, H/2). Depth is camera z. numpy only: the Blender side imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Blender cameras look down their local -Z with +Y up; OpenCV looks down +Z with +Y down.
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])

# World change for Blender users: OpenCV camera axes (x right, y down, z forward) become
# Blender world axes with x right, +Y forward and +Z up.
OPENCV_CAMERA_TO_BLENDER_WORLD = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def pixel_centre(index: np.ndarray) -> np.ndarray:
    """The coordinate of the centre of pixels `index` (columns give u, rows give v): index + 0.5.

    The one statement of the convention; every pixel grid in the engine is built from it. Integer indices
    give float64; a float array keeps its dtype.
    """
    return index + 0.5


def pixel_centers(height: int, width: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) pixel-centre coordinates, each [H, W]: u = column + 0.5, v = row + 0.5."""
    u = pixel_centre(np.arange(width, dtype=dtype))
    v = pixel_centre(np.arange(height, dtype=dtype))
    return np.broadcast_to(u[None, :], (height, width)), np.broadcast_to(v[:, None], (height, width))


def unproject_depth(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Camera-frame points [..., H, W, 3] from depth [..., H, W] (camera z), through pixel centres."""
    height, width = depth.shape[-2:]
    u, v = pixel_centers(height, width, dtype=np.float64)
    x = (u - cx) / fx * depth
    y = (v - cy) / fy * depth
    return np.stack([x, y, depth], axis=-1)


def project_points(points: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pixel coordinates [..., 2] (u, v) of camera-frame points [..., 3] with z > 0."""
    z = points[..., 2]
    return np.stack([fx * points[..., 0] / z + cx, fy * points[..., 1] / z + cy], axis=-1)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine `matrix` to points [..., 3]."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def invert_rigid(matrix: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 transforms [..., 4, 4] (rotation + translation)."""
    rotation_t = np.swapaxes(matrix[..., :3, :3], -1, -2)
    inverse = np.zeros_like(matrix)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -(rotation_t @ matrix[..., :3, 3:4])[..., 0]
    inverse[..., 3, 3] = 1.0
    return inverse


def lens_from_focal(focal_px: float, width: int, height: int, sensor_width: float) -> float:
    """Blender lens in mm for a focal in pixels, with sensor_fit AUTO (the sensor spans max(W, H))."""
    return focal_px * sensor_width / max(width, height)


def focal_from_lens(lens_mm: float, width: int, height: int, sensor_width: float) -> float:
    """Focal in pixels for a Blender lens in mm, with sensor_fit AUTO."""
    return lens_mm * max(width, height) / sensor_width


@dataclass(frozen=True)
class BlenderIntrinsics:
    """A Blender camera and render setting that reproduce pinhole intrinsics exactly (sensor_fit AUTO).

    lens in mm; shift_x, shift_y in units of the fitted sensor side; pixel_aspect_x, pixel_aspect_y are the
    scene's render.pixel_aspect_x / _y (each in [1, MAX_PIXEL_ASPECT], one of them 1).
    """

    lens: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float


# Blender's limit on render.pixel_aspect_x and render.pixel_aspect_y.
MAX_PIXEL_ASPECT = 200.0


def blender_intrinsics(
    fx: float, fy: float, cx: float, cy: float, width: int, height: int, sensor_width: float
) -> BlenderIntrinsics:
    """The Blender camera of OpenCV intrinsics in pixels, non-square pixels (fx != fy) included.

    Blender's viewplane (sensor_fit AUTO, pixel aspect ax, ay): ycor = ay / ax stretches the image's
    height to ycor * H; the sensor spans D = W when W >= ycor * H, else ycor * H; a pixel column u is at
    x/z = (u - W/2 + shift_x * D) * sensor / (lens * D), a row v (down) at
    y/z = (ycor * (H/2 - v) + shift_y * D) * sensor / (lens * D). Matching u = fx x/z + cx and
    v = -fy y/z + cy gives ycor = fx / fy, lens = fx * sensor / D, shift_x = (W/2 - cx) / D and
    shift_y = ycor * (cy - H/2) / D. With fx == fy this is D = max(W, H) and square pixels.
    """
    ycor = fx / fy
    size = max(width, ycor * height)
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    return BlenderIntrinsics(
        lens=fx * sensor_width / size,
        shift_x=(width / 2 - cx) / size,
        shift_y=ycor * (cy - height / 2) / size,
        pixel_aspect_x=aspect_x,
        pixel_aspect_y=aspect_y,
    )


def blender_camera_matrix(camera_to_world: np.ndarray) -> np.ndarray:
    """Blender matrix_world [..., 4, 4] of OpenCV camera-to-world matrices in the same world."""
    return camera_to_world @ OPENCV_TO_BLENDER_CAMERA


def blender_world_from(first_camera_to_world: np.ndarray) -> np.ndarray:
    """World change that puts the first camera at the origin looking along +Y with +Z up.

    Apply it to points and camera-to-world matrices alike: p' = W p, C' = W C.
    """
    return OPENCV_CAMERA_TO_BLENDER_WORLD @ invert_rigid(first_camera_to_world)

"""Small exact reconstructions for the Blender tests: a camera moving inside a textured box room."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from geo4d.core.result import Intrinsics, Reconstruction


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def box_room(width: int, height: int, frames: int, focal: float, seed: int = 0) -> Reconstruction:
    """Ground truth of a camera turning and moving inside the box [-4, 4] x [-3, 3] x [-4, 8] (OpenCV world).

    Depth is exact (ray-plane intersection through pixel centres); a square of sky pixels in the top-left
    corner has no point, so a frame's points are the remaining pixels in raster order.
    """
    rng = np.random.default_rng(seed)
    cameras = np.tile(np.eye(4), (frames, 1, 1))
    times = np.linspace(0.0, 1.0, frames)
    cameras[:, :3, 3] = np.stack([1.5 * times, -0.3 * times, 1.0 * times], axis=-1) + rng.normal(0, 0.01, 3)
    for index, t in enumerate(times):
        cameras[index, :3, :3] = _rotation_y(0.4 * t + 0.1) @ _rotation_y(0.0)
    cx, cy = width / 2 + 0.7, height / 2 - 0.4
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    rays = np.stack(np.broadcast_arrays((u[None, :] - cx) / focal, (v[:, None] - cy) / focal, 1.0), axis=-1)
    world_rays = np.einsum("tij,hwj->thwi", cameras[:, :3, :3], rays)
    origins = cameras[:, None, None, :3, 3]
    low, high = np.array([-4.0, -3.0, -4.0]), np.array([4.0, 3.0, 8.0])
    with np.errstate(divide="ignore"):
        exits = np.where(world_rays > 0, (high - origins) / world_rays, (low - origins) / world_rays)
    depth = exits.min(axis=-1).astype(np.float32)
    depth[:, : height // 5, : width // 5] = 0.0
    points = origins + depth[..., None] * world_rays
    checker = (np.floor(points * 2.0).astype(np.int64).sum(axis=-1) % 2).astype(np.uint8)
    color = np.stack([60 + 150 * checker, 40 + 20 * checker, 200 - 100 * checker], axis=-1).astype(np.uint8)
    return Reconstruction(
        camera_to_world=cameras,
        intrinsics=Intrinsics(focal, focal, cx, cy),
        depth=depth,
        confidence=np.ones_like(depth),
        color=color,
        fps=24.0,
        source_video="video.mp4",
    )


def write_box_room(
    folder: Path, width: int, height: int, frames: int = 5, focal: float = 30.0
) -> Reconstruction:
    """Save a box_room result into `folder`, with its colours as folder/video.mp4."""
    reconstruction = box_room(width, height, frames, focal)
    reconstruction.save(folder)
    with av.open(str(folder / "video.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in reconstruction.color:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return reconstruction

"""Fixtures shared by the core tests: files in a benchmark dataset's own on-disk format."""

import struct

import numpy as np
import pytest

from geo4d.core.evaluation.datasets.image_files import write_png

SINTEL_TAG = 202021.25


@pytest.fixture
def write_sintel_frame():
    """`write(root, sequence, number, image, depth, intrinsic, world_to_camera)` writes one MPI-Sintel frame.

    image uint8 [H, W, 3] -> training/final/<sequence>/frame_NNNN.png; depth float32 [H, W] -> training/depth
    (.dpt: float32 tag, int32 width, int32 height, float32 rows); intrinsic [3, 3] (OpenCV convention) and
    world_to_camera [3, 4] -> training/camdata_left (.cam: float32 tag, float64 3x3, float64 3x4).
    """

    def write(root, sequence, number, image, depth, intrinsic, world_to_camera):
        stem = f"frame_{number:04d}"
        paths = [root / "training" / folder / sequence for folder in ("final", "depth", "camdata_left")]
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
        write_png(paths[0] / f"{stem}.png", image)
        header = struct.pack("<fii", SINTEL_TAG, depth.shape[1], depth.shape[0])
        (paths[1] / f"{stem}.dpt").write_bytes(header + depth.astype("<f4").tobytes())
        camera = np.asarray(intrinsic, "<f8").tobytes() + np.asarray(world_to_camera, "<f8").tobytes()
        (paths[2] / f"{stem}.cam").write_bytes(struct.pack("<f", SINTEL_TAG) + camera)

    return write


@pytest.fixture
def write_synthetic_sintel(write_sintel_frame):
    """`write(root, sequence, frames, width, height, seed)`: a synthetic clip (core.synthetic, real geometry)
    written as an MPI-Sintel sequence; returns its ground truth Reconstruction (sky has depth 0)."""
    from geo4d.core.synthetic.render import SceneConfig, render_scene

    def write(root, sequence, frames, width, height, seed):
        truth = render_scene(SceneConfig(frames=frames, width=width, height=height, seed=seed))
        k = truth.intrinsics
        intrinsic = np.array([[k.fx, 0, k.cx - 0.5], [0, k.fy, k.cy - 0.5], [0, 0, 1]])  # OpenCV centres
        world_to_camera = np.linalg.inv(truth.camera_to_world)[:, :3]
        for index in range(frames):
            write_sintel_frame(
                root,
                sequence,
                index + 1,
                truth.color[index],
                truth.depth[index],
                intrinsic,
                world_to_camera[index],
            )
        return truth

    return write

"""Sintel reader on a fake MPI-Sintel tree: final-pass PNGs, and .dpt and .cam files written byte by byte."""

import struct

import numpy as np
import pytest

from geo4d.core.camera import project_points, transform_points
from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets import load_benchmark
from geo4d.core.evaluation.datasets.sintel import POSE_SEQUENCES, read_dpt

TAG = 202021.25
HEIGHT, WIDTH = 6, 10


def make_sequence(root, name, frames, seed, rotation_of, write_frame):
    """Write one sequence; returns its ground truth: images, depths, intrinsics, world-to-camera."""
    rng = np.random.default_rng(seed)
    truth = {"images": [], "depths": [], "intrinsics": [], "world_to_camera": []}
    for index in range(1, frames + 1):
        image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        depth = rng.uniform(0.5, 90.0, (HEIGHT, WIDTH)).astype(np.float32)
        intrinsic = np.array(
            [[8.0 + index, 0, (WIDTH - 1) / 2], [0, 8.0 + index, (HEIGHT - 1) / 2], [0, 0, 1]]
        )
        extrinsic = np.hstack([rotation_of(rng.normal(size=3)), rng.normal(size=(3, 1))])
        write_frame(root, name, index, image, depth, intrinsic, extrinsic)
        for key, value in zip(truth, (image, depth, intrinsic, extrinsic), strict=True):
            truth[key].append(value)
    return {key: np.stack(value) for key, value in truth.items()}


@pytest.fixture
def sintel_root(tmp_path, rotation_of, write_sintel_frame):
    truths = {
        "alley_2": make_sequence(tmp_path, "alley_2", 3, 0, rotation_of, write_sintel_frame),
        "bamboo_1": make_sequence(tmp_path, "bamboo_1", 2, 1, rotation_of, write_sintel_frame),
    }
    return tmp_path, truths


def test_depth_task_reads_every_sequence_with_exact_ground_truth(sintel_root):
    root, truths = sintel_root
    sequences = load_benchmark("sintel", root)
    assert [sequence.name for sequence in sequences] == ["alley_2", "bamboo_1"]
    for sequence in sequences:
        truth = truths[sequence.name]
        assert sequence.input_size == (576, 256) and sequence.fps == 24.0 and sequence.max_depth == 70.0
        np.testing.assert_array_equal(sequence.read_frames(), truth["images"])
        depth, valid = sequence.read_depth()
        np.testing.assert_array_equal(depth, truth["depths"])
        assert valid.all()
        k = truth["intrinsics"]
        expected = np.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2] + 0.5, k[:, 1, 2] + 0.5], axis=1)
        np.testing.assert_array_equal(sequence.intrinsics, expected)
        assert sequence.intrinsics[0, 2] == WIDTH / 2  # Sintel's centred (W-1)/2 is our W/2
        for c2w, w2c in zip(sequence.camera_to_world, truth["world_to_camera"], strict=True):
            np.testing.assert_allclose(c2w @ np.vstack([w2c, [0, 0, 0, 1]]), np.eye(4), atol=1e-12)


def test_poses_and_intrinsics_reproduce_sintel_projection(sintel_root):
    root, truths = sintel_root
    sequence = load_benchmark("sintel", root, task="pose", sequences=["alley_2"])[0]
    truth = truths["alley_2"]
    world = np.random.default_rng(5).normal(size=(20, 3)) + [0, 0, 12]
    for frame in range(sequence.num_frames):
        homogeneous = truth["intrinsics"][frame] @ (
            truth["world_to_camera"][frame] @ np.hstack([world, np.ones((20, 1))]).T
        )
        sintel_pixels = (homogeneous[:2] / homogeneous[2]).T  # OpenCV: pixel centres at integers
        camera = transform_points(np.linalg.inv(sequence.camera_to_world[frame]), world)
        fx, fy, cx, cy = sequence.intrinsics[frame]
        np.testing.assert_allclose(project_points(camera, fx, fy, cx, cy), sintel_pixels + 0.5, atol=1e-9)


def test_pose_task_needs_the_fourteen_dynamic_sequences(sintel_root):
    root, _ = sintel_root
    assert len(POSE_SEQUENCES) == 14 and "alley_2" in POSE_SEQUENCES and "bamboo_1" not in POSE_SEQUENCES
    with pytest.raises(
        Geo4DError, match=r"ambush_4 is missing: expected .*training/final/ambush_4/frame_0001.png"
    ):
        load_benchmark("sintel", root, task="pose")


def test_missing_depth_file_names_where_it_was_expected(sintel_root):
    root, _ = sintel_root
    (root / "training" / "depth" / "bamboo_1" / "frame_0002.dpt").unlink()
    with pytest.raises(
        Geo4DError, match=r"training/depth/bamboo_1/frame_0002.dpt, but it does not exist \(1 of 2"
    ):
        load_benchmark("sintel", root)


def test_missing_camera_and_wrong_layout_are_reported(sintel_root, tmp_path):
    root, _ = sintel_root
    (root / "training" / "camdata_left" / "alley_2" / "frame_0003.cam").unlink()
    with pytest.raises(Geo4DError, match=r"camdata_left/alley_2/frame_0003.cam"):
        load_benchmark("sintel", root, sequences=["alley_2"])
    with pytest.raises(Geo4DError, match=r"training/final.*does not exist"):
        load_benchmark("sintel", root / "training")


def test_damaged_depth_files_are_refused(tmp_path):
    wrong_tag = tmp_path / "wrong_tag.dpt"
    wrong_tag.write_bytes(struct.pack("<fii", 1.0, 2, 2) + bytes(16))
    with pytest.raises(Geo4DError, match="not a Sintel file"):
        read_dpt(wrong_tag)
    truncated = tmp_path / "truncated.dpt"
    truncated.write_bytes(struct.pack("<fii", TAG, 4, 3) + bytes(4 * 11))
    with pytest.raises(Geo4DError, match="has 56 bytes; a 4x3 depth file has 60"):
        read_dpt(truncated)

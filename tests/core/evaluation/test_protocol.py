"""The benchmark protocol on real Sintel-format files: ground truth at the result's pixels, a prediction that is
the ground truth under a known similarity (all errors zero), frames without a pose, and the averages."""

from dataclasses import asdict, replace

import numpy as np
import pytest

from geo4d.core.evaluation.datasets import load_benchmark
from geo4d.core.evaluation.protocol import averages, score_sequence, truth_depth_at_result
from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.core.video import resize_frames

FRAMES = 4


@pytest.fixture
def sequences(tmp_path, write_synthetic_sintel):
    """alley_2 at 128x64 (cropped to 64x64) and ambush_4 at 128x128 (halved to 64x64), with their truth."""
    truths = {
        "alley_2": write_synthetic_sintel(tmp_path, "alley_2", FRAMES, 128, 64, seed=3),
        "ambush_4": write_synthetic_sintel(tmp_path, "ambush_4", FRAMES, 128, 128, seed=4),
    }
    loaded = {
        sequence.name: sequence for sequence in load_benchmark("sintel", tmp_path, "pose", list(truths))
    }
    return loaded, truths


def empty_result(sequence, size):
    """A result of `sequence`'s frames at network size `size`, mapped as the pipeline maps them; no depth yet."""
    _, mapping = resize_frames(sequence.read_frames(), size)
    frames, (width, height) = sequence.num_frames, size
    return Reconstruction(
        camera_to_world=np.tile(np.eye(4), (frames, 1, 1)),
        intrinsics=Intrinsics(50.0, 50.0, width / 2, height / 2),
        depth=np.zeros((frames, height, width)),
        confidence=np.ones((frames, height, width)),
        color=np.zeros((frames, height, width, 3)),
        fps=24.0,
        settings={"frame_mapping": asdict(mapping)},
    )


def test_truth_is_sampled_at_the_result_pixels(sequences):
    loaded, truths = sequences
    cropped, valid = truth_depth_at_result(loaded["alley_2"], empty_result(loaded["alley_2"], (64, 64)))
    np.testing.assert_array_equal(cropped, truths["alley_2"].depth[:, :, 32:96])  # centre crop, scale 1
    np.testing.assert_array_equal(valid, truths["alley_2"].depth[:, :, 32:96] > 0)
    halved, _ = truth_depth_at_result(loaded["ambush_4"], empty_result(loaded["ambush_4"], (64, 64)))
    np.testing.assert_array_equal(halved, truths["ambush_4"].depth[:, 1::2, 1::2])  # nearest pixel centre


def test_ground_truth_under_a_similarity_scores_zero_error(sequences):
    loaded, _ = sequences
    sequence = loaded["ambush_4"]
    result = empty_result(sequence, (64, 64))
    truth, valid = truth_depth_at_result(sequence, result)
    rotation = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))  # a proper rotation
    scale, translation = 0.37, np.array([2.0, -1.0, 5.0])
    result.depth = np.where(valid, scale * truth, 0.0).astype(np.float32)
    poses = sequence.camera_to_world
    result.camera_to_world[:, :3, :3] = rotation @ poses[:, :3, :3]
    result.camera_to_world[:, :3, 3] = scale * poses[:, :3, 3] @ rotation.T + translation

    depth = score_sequence(sequence, result, "depth")
    assert depth["abs_rel"] < 1e-6 and depth["delta_1_25"] == 1.0
    assert depth["pixels"] == valid.sum() and depth["scale"] == pytest.approx(1 / scale, rel=1e-5)
    pose = score_sequence(sequence, result, "pose")
    assert pose["ate"] < 1e-9 and pose["rpe_translation"] < 1e-9 and pose["rpe_rotation_deg"] < 1e-5
    assert pose["scale"] == pytest.approx(1 / scale) and pose["frames_with_pose"] == FRAMES

    unknown = poses.copy()
    unknown[1] = np.nan  # a frame without a ground-truth pose is left out, the others still align exactly
    partial = score_sequence(replace(sequence, camera_to_world=unknown), result, "pose")
    assert partial["frames_with_pose"] == FRAMES - 1 and partial["ate"] < 1e-9
    result.camera_to_world[2, :3, 3] += 1.0  # one wrong camera centre shows in every figure
    moved = score_sequence(sequence, result, "pose")
    assert moved["ate"] > 0.05 and moved["rpe_translation"] > 0.05


def test_a_sequence_with_fewer_than_two_poses_is_skipped_with_a_note(sequences):
    loaded, _ = sequences
    sequence = loaded["alley_2"]
    unknown = np.full_like(sequence.camera_to_world, np.nan)
    unknown[0] = np.eye(4)
    row = score_sequence(replace(sequence, camera_to_world=unknown), empty_result(sequence, (64, 64)), "pose")
    assert "ate" not in row and row["frames_with_pose"] == 1 and "skipped" in row["note"]


def test_depth_averages_weigh_pixels_and_pose_averages_weigh_sequences():
    depth_rows = [
        {"abs_rel": 0.1, "delta_1_25": 0.9, "pixels": 100},
        {"abs_rel": 0.5, "delta_1_25": 0.5, "pixels": 300},
    ]
    assert averages(depth_rows, "depth") == pytest.approx(
        {"abs_rel": 0.4, "delta_1_25": 0.6, "sequences": 2, "pixels": 400}
    )
    pose_rows = [
        {"ate": 0.1, "rpe_translation": 0.02, "rpe_rotation_deg": 1.0},
        {"ate": 0.3, "rpe_translation": 0.04, "rpe_rotation_deg": 2.0},
        {"name": "skipped", "note": "skipped"},
    ]
    assert averages(pose_rows, "pose") == pytest.approx(
        {"ate": 0.2, "rpe_translation": 0.03, "rpe_rotation_deg": 1.5, "sequences": 2}
    )

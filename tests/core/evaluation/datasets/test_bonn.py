"""Bonn reader on fake sequences in the distributed TUM-style format: frames 30..139 of five sequences."""

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets import get_dataset, load_benchmark
from geo4d.core.evaluation.datasets.bonn import PROTOCOL_SEQUENCES

FRAMES = 142
POSE_GAP = 40


@pytest.fixture
def bonn_root(tmp_path, write_tum_folder):
    truths = {}
    for seed, name in enumerate(PROTOCOL_SEQUENCES):
        frames = FRAMES if name == "balloon2" else 32
        rgb = 1548266469.0 + np.arange(frames) / 30.0
        pose_stamps = np.delete(rgb, POSE_GAP) + 0.001 if frames > POSE_GAP else rgb + 0.001
        truths[name] = write_tum_folder(tmp_path / f"rgbd_bonn_{name}", rgb, rgb + 0.003, pose_stamps, seed)
    (tmp_path / "rgbd_bonn_static").mkdir()  # a sequence outside the protocol is ignored
    return tmp_path, truths


def test_five_protocol_sequences_frames_30_to_139(bonn_root):
    root, truths = bonn_root
    sequences = load_benchmark("bonn", root)
    assert [sequence.name for sequence in sequences] == list(PROTOCOL_SEQUENCES)
    balloon = sequences[0]
    np.testing.assert_array_equal(balloon.frame_indices, np.arange(30, 140))
    assert [sequence.num_frames for sequence in sequences] == [110, 2, 2, 2, 2]
    truth = truths["balloon2"]
    np.testing.assert_array_equal(balloon.read_frames(), truth["images"][30:140])
    depth, valid = balloon.read_depth()
    np.testing.assert_array_equal(depth, (truth["raw_depths"][30:140] / 5000.0).astype(np.float32))
    np.testing.assert_array_equal(valid, truth["raw_depths"][30:140] > 0)
    assert balloon.max_depth == 70.0 and get_dataset("bonn").max_depth == 70.0


def test_poses_paired_by_timestamp_and_a_frame_without_pose_is_nan(bonn_root):
    root, truths = bonn_root
    (balloon,) = load_benchmark("bonn", root, sequences=["balloon2"])
    poses = truths["balloon2"]["poses"]  # one per frame except POSE_GAP
    expected = [poses[frame - (frame > POSE_GAP)] for frame in range(30, 140) if frame != POSE_GAP]
    known = balloon.pose_valid
    assert not known[POSE_GAP - 30] and known.sum() == 109
    assert np.isnan(balloon.camera_to_world[POSE_GAP - 30]).all()
    np.testing.assert_allclose(balloon.camera_to_world[known], expected, atol=1e-12)
    np.testing.assert_allclose(balloon.intrinsics[0], [542.822841, 542.576870, 316.093520, 238.256098])


def test_missing_protocol_sequence_and_depth_file_are_reported(bonn_root):
    root, _ = bonn_root
    depth_file = sorted((root / "rgbd_bonn_balloon2" / "depth").iterdir())[35]
    depth_file.unlink()
    with pytest.raises(Geo4DError, match=rf"depth image listed in .*depth.txt at .*{depth_file.name}"):
        load_benchmark("bonn", root, sequences=["balloon2"])
    (root / "rgbd_bonn_crowd3" / "rgb.txt").unlink()
    with pytest.raises(Geo4DError, match=r"crowd3 is missing: expected .*rgbd_bonn_crowd3/rgb.txt"):
        load_benchmark("bonn", root)


def test_sequence_too_short_for_the_protocol_is_refused(tmp_path, write_tum_folder):
    rgb = 10.0 + np.arange(20) / 30.0
    write_tum_folder(tmp_path / "rgbd_bonn_balloon2", rgb, rgb, rgb)
    with pytest.raises(Geo4DError, match=r"rgbd_bonn_balloon2 has no usable frames: rgb.txt lists 20 images"):
        load_benchmark("bonn", tmp_path, sequences=["balloon2"])


def test_sequence_without_any_pose_still_gives_its_depth_frames(tmp_path, write_tum_folder):
    rgb = 10.0 + np.arange(35) / 30.0
    write_tum_folder(tmp_path / "rgbd_bonn_crowd2", rgb, rgb + 0.001, [])
    (crowd,) = load_benchmark("bonn", tmp_path, sequences=["crowd2"])
    assert crowd.num_frames == 5 and not crowd.pose_valid.any()
    assert crowd.read_depth()[1].any()

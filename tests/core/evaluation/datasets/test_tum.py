"""TUM-dynamics reader on a fake sequence in the TUM RGB-D format, with timestamps to associate."""

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets import load_benchmark
from geo4d.core.evaluation.datasets.tum import PROTOCOL_SEQUENCES
from geo4d.core.evaluation.datasets.tum_format import associate

NAME = "rgbd_dataset_freiburg3_walking_xyz"
FRAMES = 300
POSE_GAPS = {10, 11, 12, 50}  # colour frames without a motion-capture pose
DEPTH_GAP = 6  # a colour frame without a depth image


@pytest.fixture
def tum_root(tmp_path, write_tum_folder):
    rgb = 1311868164.0 + np.arange(FRAMES) / 30.0
    depth = np.delete(rgb, DEPTH_GAP) + 0.004
    with_pose = np.array([i for i in range(FRAMES) if i not in POSE_GAPS])
    # the true pose 2 ms after each frame, and a decoy 12 ms after it that association must not pick
    pose_stamps = np.stack([rgb[with_pose] + 0.002, rgb[with_pose] + 0.012], axis=1).reshape(-1)
    truth = write_tum_folder(tmp_path / NAME, rgb, depth, pose_stamps)
    return tmp_path, truth, with_pose


def test_protocol_frames_poses_depth_and_intrinsics(tum_root):
    root, truth, with_pose = tum_root
    (sequence,) = load_benchmark("tum", root, sequences=[NAME])
    expected_frames = with_pose[::3][:90]
    assert sequence.num_frames == 90
    np.testing.assert_array_equal(sequence.frame_indices, expected_frames)
    np.testing.assert_array_equal(sequence.read_frames(), truth["images"][expected_frames])
    true_pose_of_frame = {frame: truth["poses"][2 * k] for k, frame in enumerate(with_pose)}
    np.testing.assert_allclose(
        sequence.camera_to_world, [true_pose_of_frame[f] for f in expected_frames], atol=1e-12
    )
    assert sequence.pose_valid.all()
    depth, valid = sequence.read_depth()
    depth_index = expected_frames - (expected_frames > DEPTH_GAP)
    has_depth = expected_frames != DEPTH_GAP
    raw = truth["raw_depths"][depth_index[has_depth]]
    np.testing.assert_array_equal(depth[has_depth], (raw / 5000.0).astype(np.float32))
    np.testing.assert_array_equal(valid[has_depth], raw > 0)
    assert not valid[~has_depth].any() and (depth[~has_depth] == 0).all()
    np.testing.assert_allclose(sequence.intrinsics[0], [535.4, 539.2, 320.6, 248.1])
    assert sequence.input_size == (512, 384)


def test_default_is_the_eight_protocol_sequences(tum_root):
    root, _, _ = tum_root
    assert len(PROTOCOL_SEQUENCES) == 8 and NAME in PROTOCOL_SEQUENCES
    with pytest.raises(
        Geo4DError,
        match=r"rgbd_dataset_freiburg3_sitting_static is missing: expected .*sitting_static/rgb.txt",
    ):
        load_benchmark("tum", root)
    with pytest.raises(Geo4DError, match="has no 'depth' task"):
        load_benchmark("tum", root, task="depth", sequences=[NAME])


def test_association_is_greedy_closest_first_and_one_to_one():
    first = np.array([0.0, 0.010, 0.050, 0.100])
    second = np.array([0.006, 0.0085, 0.115, 0.2])
    # 0.010 takes 0.0085 (1.5 ms); 0.0 then takes 0.006; 0.050 has nothing within 20 ms; 0.100 takes 0.115
    np.testing.assert_array_equal(associate(first, second), [0, 1, -1, 2])
    np.testing.assert_array_equal(associate(first, second[:1]), [-1, 0, -1, -1])


def test_listed_but_missing_image_and_malformed_lines_are_reported(tum_root):
    root, _, _ = tum_root
    folder = root / NAME
    (folder / "rgb" / sorted(p.name for p in (folder / "rgb").iterdir())[3]).unlink()
    with pytest.raises(Geo4DError, match=r"colour image listed in .*rgb.txt at .*rgb/1311868164.1000\d*.png"):
        load_benchmark("tum", root, sequences=[NAME])
    with (folder / "groundtruth.txt").open("a") as stream:
        stream.write("1311868200.0 1 2 3\n")
    with pytest.raises(
        Geo4DError, match=r"groundtruth.txt is not in TUM format: data line \d+ has 4 fields, expected 8"
    ):
        load_benchmark("tum", root, sequences=[NAME])


def test_missing_list_file_names_its_path(tum_root):
    root, _, _ = tum_root
    (root / NAME / "depth.txt").unlink()
    with pytest.raises(Geo4DError, match=rf"Expected the TUM-format list depth.txt at .*{NAME}/depth.txt"):
        load_benchmark("tum", root, sequences=[NAME])

"""ScanNet reader on a fake scene as SensReader exports it: color/, depth/, pose/ and intrinsic/ files."""

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets import load_benchmark
from geo4d.core.evaluation.datasets.image_files import write_jpeg, write_png
from geo4d.core.evaluation.datasets.scannet import PROTOCOL_SEQUENCES

NAME = "scene0707_00"
FRAMES = 275
UNKNOWN_POSE = 9  # SensReader writes -inf for frames the tracker lost
INTRINSIC_DEPTH = np.array(
    [[577.590698, 0, 318.905426, 0], [0, 578.729797, 242.683609, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
)


def write_matrix(path, matrix):
    path.write_text("\n".join(" ".join(f"{value:f}" for value in row) for row in matrix) + "\n")


@pytest.fixture
def scannet_root(tmp_path, rotation_of):
    scene = tmp_path / NAME
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (FRAMES, 3), dtype=np.uint8)
    raws = rng.integers(0, 8000, (FRAMES, 3, 4), dtype=np.uint16)
    poses = np.tile(np.eye(4), (FRAMES, 1, 1))
    for index in range(FRAMES):
        write_jpeg(scene / "color" / f"{index}.jpg", np.broadcast_to(colours[index], (8, 8, 3)))
        write_png(scene / "depth" / f"{index}.png", raws[index])
        poses[index, :3, :3] = rotation_of(rng.normal(size=3))
        poses[index, :3, 3] = rng.normal(size=3).round(6)
        write_matrix(
            scene / "pose" / f"{index}.txt",
            np.full((4, 4), -np.inf) if index == UNKNOWN_POSE else poses[index],
        )
    write_matrix(scene / "intrinsic" / "intrinsic_depth.txt", INTRINSIC_DEPTH)
    return tmp_path, {"colours": colours, "raws": raws, "poses": poses}


def test_ninety_frames_at_stride_three_in_numeric_order(scannet_root):
    root, truth = scannet_root
    (scene,) = load_benchmark("scannet", root, sequences=[NAME])
    chosen = np.arange(0, 270, 3)
    np.testing.assert_array_equal(scene.frame_indices, chosen)
    assert [path.name for path in scene.frame_files[:5]] == ["0.jpg", "3.jpg", "6.jpg", "9.jpg", "12.jpg"]
    frames = scene.read_frames()
    assert frames.shape == (90, 8, 8, 3)
    assert np.abs(frames.astype(int) - truth["colours"][chosen, None, None, :]).max() <= 3
    depth, valid = scene.read_depth()
    np.testing.assert_array_equal(depth, (truth["raws"][chosen] / 1000.0).astype(np.float32))
    np.testing.assert_array_equal(valid, truth["raws"][chosen] > 0)


def test_poses_intrinsics_and_lost_tracking(scannet_root):
    root, truth = scannet_root
    (scene,) = load_benchmark("scannet", root, sequences=[NAME])
    chosen = np.arange(0, 270, 3)
    lost = chosen == UNKNOWN_POSE
    np.testing.assert_array_equal(scene.pose_valid, ~lost)
    assert np.isnan(scene.camera_to_world[lost]).all()
    np.testing.assert_allclose(scene.camera_to_world[~lost], truth["poses"][chosen[~lost]], atol=1e-6)
    np.testing.assert_allclose(scene.intrinsics[0], [577.590698, 578.729797, 319.405426, 243.183609])


def test_protocol_scenes_and_missing_files_are_reported(scannet_root):
    root, _ = scannet_root
    assert (
        PROTOCOL_SEQUENCES[0] == NAME
        and PROTOCOL_SEQUENCES[-1] == "scene0806_00"
        and len(PROTOCOL_SEQUENCES) == 100
    )
    with pytest.raises(
        Geo4DError, match=r"scene0708_00 is missing: expected .*scene0708_00/color/0.jpg \(99 of 100"
    ):
        load_benchmark("scannet", root)
    (root / NAME / "pose" / "30.txt").unlink()
    with pytest.raises(Geo4DError, match=rf"pose file of each colour frame of {NAME} at .*pose/30.txt"):
        load_benchmark("scannet", root, sequences=[NAME])
    (root / NAME / "intrinsic" / "intrinsic_depth.txt").write_text("1 2 3\n")
    write_matrix(root / NAME / "pose" / "30.txt", np.eye(4))
    with pytest.raises(Geo4DError, match=r"intrinsic_depth.txt does not hold a 4x4 matrix"):
        load_benchmark("scannet", root, sequences=[NAME])

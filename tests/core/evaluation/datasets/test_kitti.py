"""KITTI reader on fake trees in both distributed layouts: raw + annotated, and val_selection_cropped."""

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets import load_benchmark
from geo4d.core.evaluation.datasets.image_files import write_png

DRIVES = {"2011_09_26_drive_0002_sync": 113, "2011_10_03_drive_0047_sync": 3}
HEIGHT, WIDTH = 2, 5
P_RECT_02 = (
    "7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 2.163791e-01 0 0 1 2.745884e-03"
)
CALIBRATION = (
    f"calib_time: 09-Jan-2012 13:57:47\nP_rect_00: 1 0 2 0 0 1 3 0 0 0 1 0\nP_rect_02: {P_RECT_02}\n"
)


def random_depth(rng):
    raw = rng.integers(0, 20000, (HEIGHT, WIDTH), dtype=np.uint16)
    raw[rng.random((HEIGHT, WIDTH)) < 0.5] = 0  # LiDAR ground truth is sparse
    return raw


@pytest.fixture
def annotated_root(tmp_path):
    """data_depth_annotated's val/ beside raw sync drives; calibration only for the 2011_09_26 date."""
    rng = np.random.default_rng(0)
    truth = {}
    for drive, count in DRIVES.items():
        depth_folder = tmp_path / "val" / drive / "proj_depth" / "groundtruth" / "image_02"
        image_folder = tmp_path / drive[:10] / drive / "image_02" / "data"
        depth_folder.mkdir(parents=True)
        image_folder.mkdir(parents=True)
        frames = np.arange(5, 5 + count)  # the annotation skips the first five raw frames
        raws = np.stack([random_depth(rng) for _ in frames])
        images = rng.integers(0, 256, (count, HEIGHT, WIDTH, 3), dtype=np.uint8)
        for frame, raw, image in zip(frames, raws, images, strict=True):
            write_png(depth_folder / f"{frame:010d}.png", raw)
            write_png(image_folder / f"{frame:010d}.png", image)
        write_png(
            image_folder / "0000000000.png", np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        )  # unannotated raw frame
        truth[drive] = {"raw": raws, "images": images}
    (tmp_path / "2011_09_26" / "calib_cam_to_cam.txt").write_text(CALIBRATION)
    return tmp_path, truth


def test_annotated_layout_first_110_frames_with_exact_depth(annotated_root):
    root, truth = annotated_root
    sequences = load_benchmark("kitti", root)
    assert [sequence.name for sequence in sequences] == sorted(DRIVES)
    long_drive, short_drive = sequences
    assert long_drive.num_frames == 110 and short_drive.num_frames == 3
    np.testing.assert_array_equal(long_drive.frame_indices, np.arange(5, 115))
    expected = truth["2011_09_26_drive_0002_sync"]
    depth, valid = long_drive.read_depth()
    np.testing.assert_array_equal(depth, (expected["raw"][:110] / 256.0).astype(np.float32))
    np.testing.assert_array_equal(valid, expected["raw"][:110] > 0)
    np.testing.assert_array_equal(long_drive.read_frames(), expected["images"][:110])
    np.testing.assert_allclose(long_drive.intrinsics[0], [721.5377, 721.5377, 610.0593, 173.354])
    assert short_drive.intrinsics is None and not long_drive.has_poses
    assert long_drive.max_depth is None and long_drive.input_size == (640, 192) and long_drive.fps == 10.0


def test_annotated_frame_without_raw_image_is_reported(annotated_root):
    root, _ = annotated_root
    (root / "2011_10_03" / "2011_10_03_drive_0047_sync" / "image_02" / "data" / "0000000006.png").unlink()
    with pytest.raises(
        Geo4DError,
        match=r"raw left-camera image .* at .*2011_10_03_drive_0047_sync/image_02/data/0000000006.png",
    ):
        load_benchmark("kitti", root)


def test_cropped_selection_groups_drives_and_reads_intrinsics(tmp_path):
    selection = tmp_path / "depth_selection" / "val_selection_cropped"
    for folder in ("groundtruth_depth", "image", "intrinsics"):
        (selection / folder).mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for drive, frames in {
        "2011_09_26_drive_0002_sync": [69, 5, 12],
        "2011_09_26_drive_0079_sync": [40],
    }.items():
        for frame in frames:
            for camera in ("image_02", "image_03"):
                raw = random_depth(rng)
                write_png(
                    selection / "groundtruth_depth" / f"{drive}_groundtruth_depth_{frame:010d}_{camera}.png",
                    raw,
                )
                write_png(
                    selection / "image" / f"{drive}_image_{frame:010d}_{camera}.png",
                    np.zeros((HEIGHT, WIDTH, 3), np.uint8),
                )
                k = f"{700 + frame} 0 {600 + frame} 0 {700 + frame} 170 0 0 1"
                (selection / "intrinsics" / f"{drive}_image_{frame:010d}_{camera}.txt").write_text(k + "\n")
                written[(drive, frame, camera)] = raw
    first, second = load_benchmark("kitti", tmp_path)
    assert (first.name, second.name) == ("2011_09_26_drive_0002_sync", "2011_09_26_drive_0079_sync")
    np.testing.assert_array_equal(first.frame_indices, [5, 12, 69])
    depth, _ = first.read_depth()
    np.testing.assert_array_equal(
        depth[2], (written[(first.name, 69, "image_02")] / 256.0).astype(np.float32)
    )
    np.testing.assert_allclose(first.intrinsics[:, 0], [705, 712, 769])
    np.testing.assert_allclose(first.intrinsics[1, 2:], [612.5, 170.5])
    assert all("image_02" in path.name for path in first.frame_files)
    (selection / "intrinsics" / "2011_09_26_drive_0079_sync_image_0000000040_image_02.txt").unlink()
    with pytest.raises(
        Geo4DError,
        match=r"intrinsics file .* at .*intrinsics/2011_09_26_drive_0079_sync_image_0000000040_image_02.txt",
    ):
        load_benchmark("kitti", tmp_path)


def test_root_without_either_layout_names_both(tmp_path):
    with pytest.raises(
        Geo4DError, match=r"not a KITTI depth root: expected .*/val .*val_selection_cropped/groundtruth_depth"
    ):
        load_benchmark("kitti", tmp_path)

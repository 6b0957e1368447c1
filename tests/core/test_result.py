"""The result folder: round trips, point files that match the dense maps, and clear errors."""

import json
import os

import numpy as np
import pytest

from geo4d.core.camera import invert_rigid, project_points, transform_points
from geo4d.core.errors import Geo4DError
from geo4d.core.ply import read_points
from geo4d.core.result import Intrinsics, Reconstruction, read_description, read_frame_points
from geo4d.core.result_description import PointOptions


def make_reconstruction(frames: int = 3, height: int = 6, width: int = 8, seed: int = 0) -> Reconstruction:
    rng = np.random.default_rng(seed)
    camera_to_world = np.tile(np.eye(4), (frames, 1, 1))
    camera_to_world[:, :3, 3] = rng.normal(size=(frames, 3))
    angle = rng.uniform(-0.3, 0.3, size=frames)
    camera_to_world[:, 0, 0], camera_to_world[:, 0, 2] = np.cos(angle), np.sin(angle)
    camera_to_world[:, 2, 0], camera_to_world[:, 2, 2] = -np.sin(angle), np.cos(angle)
    depth = rng.uniform(1, 5, size=(frames, height, width)).astype(np.float32)
    depth[:, 0, :3] = 0  # sky
    return Reconstruction(
        camera_to_world=camera_to_world,
        intrinsics=Intrinsics(10.0, 10.0, width / 2, height / 2),
        depth=depth,
        confidence=rng.uniform(0.1, 1, size=depth.shape).astype(np.float32),
        color=rng.integers(0, 256, size=(*depth.shape, 3), dtype=np.uint8),
        fps=24.0,
        source_video="video.mp4",
        source_frames=np.arange(10, 10 + frames),
        settings={"stride": 4},
        timings={"align": 1.5},
        warnings=["window 2 looked wrong"],
    )


def test_save_load_round_trip(tmp_path):
    original = make_reconstruction()
    original.save(tmp_path / "result")
    loaded = Reconstruction.load(tmp_path / "result")
    for name in ("camera_to_world", "depth", "confidence", "color", "source_frames"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.intrinsics == original.intrinsics
    assert (loaded.fps, loaded.source_video, loaded.settings, loaded.timings, loaded.warnings) == (
        24.0,
        "video.mp4",
        {"stride": 4},
        {"align": 1.5},
        ["window 2 looked wrong"],
    )


def test_point_files_hold_valid_pixels_that_project_to_their_pixel_centres(tmp_path):
    result = make_reconstruction()
    result.save(tmp_path / "result")
    k = result.intrinsics
    for index in range(result.num_frames):
        points = read_frame_points(tmp_path / "result", index)
        rows, cols = np.nonzero(result.valid_mask()[index])
        assert len(points) == len(rows) == result.height * result.width - 3
        xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1).astype(np.float64)
        camera_points = transform_points(invert_rigid(result.camera_to_world[index]), xyz)
        uv = project_points(camera_points, k.fx, k.fy, k.cx, k.cy)
        np.testing.assert_allclose(uv, np.stack([cols + 0.5, rows + 0.5], axis=-1), atol=1e-4)
        rgb = np.stack([points["red"], points["green"], points["blue"]], axis=-1)
        np.testing.assert_array_equal(rgb, result.color[index, rows, cols])
        np.testing.assert_array_equal(points["confidence"], result.confidence[index, rows, cols])
        world = result.world_points()[index, rows, cols]
        np.testing.assert_allclose(xyz, world, atol=1e-5)


def test_point_limit_and_confidence_threshold(tmp_path):
    result = make_reconstruction()
    result.save(tmp_path / "result", min_confidence=0.5, max_points_per_frame=7)
    for index in range(result.num_frames):
        points = read_frame_points(tmp_path / "result", index)
        assert len(points) == 7 and (points["confidence"] >= 0.5).all()
    assert read_description(tmp_path / "result").points == PointOptions(0.5, 7)
    stored = json.loads((tmp_path / "result" / "reconstruction.json").read_text())
    assert stored["points"] == {"min_confidence": 0.5, "max_points_per_frame": 7}


def test_saving_replaces_a_previous_result_but_never_a_foreign_folder(tmp_path):
    make_reconstruction(frames=4).save(tmp_path / "result")
    make_reconstruction(frames=2).save(tmp_path / "result")
    assert Reconstruction.load(tmp_path / "result").num_frames == 2
    assert sorted(os.listdir(tmp_path / "result" / "frames")) == ["000000.ply", "000001.ply"]
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(Geo4DError, match="not an earlier Geo4D result folder, so it is not replaced"):
        make_reconstruction().save(foreign)
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "result"]


def test_unwritable_output_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(Geo4DError, match="Cannot write"):
        make_reconstruction().save(blocker / "result")


def test_inconsistent_arrays_are_refused():
    result = make_reconstruction()
    with pytest.raises(ValueError, match="confidence has shape"):
        Reconstruction(
            result.camera_to_world, result.intrinsics, result.depth, result.confidence[:2], result.color, 24
        )
    bad_cameras = result.camera_to_world.copy()
    bad_cameras[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Reconstruction(bad_cameras, result.intrinsics, result.depth, result.confidence, result.color, 24)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "reconstruction.json").unlink(), "reconstruction.json is missing"),
        (
            lambda folder: (folder / "reconstruction.json").write_text("{broken"),
            "damaged and cannot be parsed",
        ),
        (
            lambda folder: (folder / "reconstruction.json").write_text('{"format": "other"}'),
            "not a Geo4D reconstruction",
        ),
        (lambda folder: (folder / "frames" / "000001.ply").unlink(), "1 of 3 frame files are missing"),
        (lambda folder: (folder / "depth.npz").unlink(), "depth.npz is missing"),
        (lambda folder: (folder / "depth.npz").write_bytes(b"garbage"), "depth.npz is damaged"),
    ],
)
def test_damaged_results_name_the_file_and_the_problem(tmp_path, damage, message):
    folder = make_reconstruction().save(tmp_path / "result")
    damage(folder)
    with pytest.raises(Geo4DError, match=message):
        Reconstruction.load(folder)


def test_frame_count_disagreeing_with_the_files_is_reported(tmp_path):
    folder = make_reconstruction().save(tmp_path / "result")
    description = json.loads((folder / "reconstruction.json").read_text())
    description["camera_to_world"] = description["camera_to_world"][:2]
    (folder / "reconstruction.json").write_text(json.dumps(description))
    with pytest.raises(Geo4DError, match="camera_to_world has 2 entries but frames has 3"):
        read_description(folder)


def test_truncated_point_file_is_reported(tmp_path):
    folder = make_reconstruction().save(tmp_path / "result")
    path = folder / "frames" / "000000.ply"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(Geo4DError, match="truncated"):
        read_points(path)


def test_result_folder_is_an_ordinary_folder(tmp_path):
    folder = make_reconstruction().save(tmp_path / "result")
    fresh = tmp_path / "made_by_mkdir"
    fresh.mkdir()
    assert folder.stat().st_mode & 0o777 == fresh.stat().st_mode & 0o777

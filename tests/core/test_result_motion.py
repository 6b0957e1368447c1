"""Result files with motion masks: the "motion" entry, motion.npz, static.ply, split frames, older results."""

import json
import re

import numpy as np
import pytest
from test_result import make_reconstruction

from geo4d.core.errors import Geo4DError
from geo4d.core.motion_description import MotionDescription
from geo4d.core.motion_masks import MotionMasks
from geo4d.core.result import Reconstruction, read_description, read_frame_points, read_static_points
from geo4d.core.result_description import parse_description


def with_motion(frames: int = 3) -> Reconstruction:
    """make_reconstruction's result seen by one still camera, with a wall at depth 3 and a moving block
    (rows 3-5, columns 4-7) in every frame."""
    result = make_reconstruction(frames)
    result.camera_to_world[:] = np.eye(4)
    result.depth[result.depth > 0] = 3.0
    score = np.zeros(result.depth.shape, np.float32)
    score[:, 3:, 4:] = 0.9
    score[:, 0, 5] = 0.4  # below the threshold: static
    result.motion = MotionMasks(score, 0.5, 0.8, [])
    return result


def test_full_result_keeps_every_point_and_stores_the_masks(tmp_path):
    result = with_motion()
    folder = result.save(tmp_path / "result")
    description = read_description(folder)
    assert description.motion == MotionDescription(0.5, "all", None, 0.8)
    assert not description.split and not (folder / "static.ply").exists()
    assert len(read_frame_points(folder, 0)) == int(result.valid_mask()[0].sum())
    loaded = Reconstruction.load(folder)
    np.testing.assert_allclose(loaded.motion.score, result.motion.score, atol=0.5 / 255)
    np.testing.assert_array_equal(loaded.motion.moving(), result.motion.moving())


def test_split_result_holds_moving_frames_and_the_static_cloud(tmp_path):
    result = with_motion()
    folder = result.save(tmp_path / "result", split=True)
    description = read_description(folder)
    assert description.split and description.motion.frames == "moving"
    moving = result.motion.moving() & result.valid_mask()
    for index in range(result.num_frames):
        assert len(read_frame_points(folder, index)) == int(moving[index].sum())
    static = read_static_points(folder)
    assert description.motion.static_points == len(static) > 0
    assert json.loads((folder / "reconstruction.json").read_text())["motion"]["static_points"] == len(static)
    # Round trip: the dense maps stay whole; the masks come back.
    loaded = Reconstruction.load(folder)
    np.testing.assert_array_equal(loaded.depth, result.depth)
    np.testing.assert_array_equal(loaded.motion.moving(), result.motion.moving())


def test_split_without_masks_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(Geo4DError, match="has no motion masks"):
        make_reconstruction().save(tmp_path / "result", split=True)
    assert not (tmp_path / "result").exists()


def test_an_older_result_without_masks_reads_as_before(tmp_path):
    folder = make_reconstruction().save(tmp_path / "result")
    content = json.loads((folder / "reconstruction.json").read_text())
    assert "motion" not in content and not (folder / "motion.npz").exists()
    description = read_description(folder)
    assert description.motion is None and not description.split
    assert Reconstruction.load(folder).motion is None


@pytest.mark.parametrize(
    ("motion", "message"),
    [
        ({"threshold": 0.5, "frames": "half"}, "motion.frames is \"half\"; it must be 'all' or 'moving'"),
        ({"threshold": 2, "frames": "all"}, "motion.threshold is 2; it must be a number in 0..1"),
        ({"threshold": 0.5, "frames": "moving"}, "motion.static_points is null"),
        ({"threshold": 0.5, "frames": "all", "static_points": 3}, "only a split result"),
        ({"frames": "all"}, "motion lacks threshold"),
        ([], "motion is \\[\\]; it must be an object"),
    ],
)
def test_a_bad_motion_entry_is_refused_naming_the_field(tmp_path, motion, message):
    folder = with_motion().save(tmp_path / "result")
    content = json.loads((folder / "reconstruction.json").read_text())
    content["motion"] = motion
    with pytest.raises(Geo4DError) as raised:
        parse_description(json.dumps(content), "shot/reconstruction.json")
    text = str(raised.value)
    assert "\n" not in text and text.startswith("shot/reconstruction.json: ")
    assert re.search(message, text), text


def test_damaged_or_missing_static_cloud_and_masks_are_refused_with_one_line(tmp_path):
    folder = with_motion().save(tmp_path / "result", split=True)
    static = folder / "static.ply"
    static.write_bytes(static.read_bytes()[:-5])
    with pytest.raises(Geo4DError) as raised:
        read_static_points(folder)
    assert str(raised.value).startswith(f"{static} is not a valid Geo4D point file: it is truncated")
    assert "\n" not in str(raised.value)
    static.unlink()
    with pytest.raises(
        Geo4DError, match="static.ply \\(the static cloud its reconstruction.json announces\\)"
    ):
        read_description(folder)
    (folder / "static.ply").write_bytes(b"")  # present again, so loading gets as far as the masks
    (folder / "motion.npz").write_bytes(b"not a zip")
    with pytest.raises(Geo4DError, match="motion.npz is damaged"):
        Reconstruction.load(folder)

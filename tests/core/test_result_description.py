"""The reconstruction.json schema: every field's type, range and consistency, one clear line per refusal."""

import copy
import json
import math
import re

import numpy as np
import pytest
from test_result import make_reconstruction

from geo4d.__main__ import COMMANDS
from geo4d.core.cli import main as cli_main
from geo4d.core.errors import Geo4DError
from geo4d.core.result import Reconstruction, read_description
from geo4d.core.result_description import parse_description

# Marks an entry to delete rather than replace.
DELETE = object()
ZEROS = [[0.0] * 4 for _ in range(4)]
MIRROR = [[-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]
SCALED = [[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1.0]]
# The pipeline's record of how it scaled and cropped the video (core.frame_size.FrameMapping).
FRAME_MAPPING = {
    "source_width": 80,
    "source_height": 60,
    "width": 8,
    "height": 6,
    "scale_x": 0.1,
    "scale_y": 0.1,
    "crop_left": 0,
    "crop_top": 0,
}


@pytest.fixture(scope="module")
def stored() -> dict:
    """The content of a valid 3-frame reconstruction.json (source frames 10..12), as the writer makes it."""
    result = make_reconstruction()
    result.settings = {"reconstruction": {"stride": 4}, "frame_mapping": FRAME_MAPPING}
    return result.description().to_json()


def edited(content: dict, where: tuple, value) -> dict:
    """A deep copy of `content` with the entry at the key/index path `where` replaced (or DELETEd)."""
    content = copy.deepcopy(content)
    *parents, last = where
    holder = content
    for key in parents:
        holder = holder[key]
    if value is DELETE:
        del holder[last]
    else:
        holder[last] = value
    return content


def refusal(data) -> str:
    with pytest.raises(Geo4DError) as raised:
        parse_description(data, "shot/reconstruction.json")
    message = str(raised.value)
    assert "\n" not in message
    return message


BAD_ENTRIES = {
    "wrong-type": [
        (("frames",), 5, "frames is 5; it must be a list of frame file names"),
        (("source",), None, "source is null; it must be an object"),
        (("source", "video"), 5, "source.video is 5; it must be a path or null"),
        (("source", "video"), "", 'source.video is ""'),
        (("source", "frames"), "10-12", 'source.frames is "10-12"'),
        (("fps",), "24", 'fps is "24"; it must be a number'),
        (("width",), "48", 'width is "48"; it must be a whole number'),
        (("width",), 8.0, "width is 8.0; it must be a whole number"),
        (("intrinsics",), [10, 10, 4, 3], "intrinsics is \\[10, 10, 4, 3\\]; it must be an object"),
        (("camera_to_world",), {}, "camera_to_world is {}; it must be a list"),
        (("camera_to_world", 1), np.eye(3).tolist(), "camera_to_world\\[1\\] is .*; it must be a 4x4 matrix"),
        (("camera_to_world", 0, 0, 0), "1", "camera_to_world\\[0\\] is .*; it must be a 4x4 matrix"),
        (("points", "max_points_per_frame"), "7", 'points.max_points_per_frame is "7"'),
        (("settings",), [], "settings is \\[\\]; it must be an object"),
        (("settings", "frame_mapping"), 3, "settings.frame_mapping is 3; it must be an object"),
        (("timings",), [1.5], "timings is \\[1.5\\]; it must be an object"),
        (("timings", "align"), "fast", 'timings.align is "fast"'),
        (("warnings",), "oops", 'warnings is "oops"; it must be a list'),
        (("warnings", 0), 3, "warnings\\[0\\] is 3; it must be a text"),
    ],
    "missing": [
        (("intrinsics", "cx"), DELETE, "intrinsics lacks cx"),
        (("source", "frames"), DELETE, "source lacks frames"),
        (("camera_to_world",), DELETE, "camera_to_world is missing"),
        (("points",), DELETE, "points is missing"),
        (("settings", "frame_mapping", "scale_x"), DELETE, "settings.frame_mapping lacks scale_x"),
    ],
    "bool-as-number": [
        (("fps",), True, "fps is true; it must be a number in 0.001..32767"),
        (("width",), True, "width is true"),
        (("intrinsics", "fx"), True, "intrinsics.fx is true"),
        (("source", "frames", 0), False, "source.frames\\[0\\] is false"),
        (
            ("camera_to_world", 2, 0, 0),
            True,
            "camera_to_world\\[2\\] is .*; it must be a 4x4 matrix of numbers",
        ),
        (("points", "min_confidence"), False, "points.min_confidence is false"),
        (("timings", "align"), True, "timings.align is true"),
    ],
    "not-finite": [
        (("fps",), math.nan, "fps is NaN"),
        (("fps",), math.inf, "fps is Infinity"),
        (("intrinsics", "cx"), math.nan, "intrinsics.cx is NaN; it must be a finite number"),
        (("intrinsics", "fy"), -math.inf, "intrinsics.fy is -Infinity"),
        (("camera_to_world", 2, 0, 3), math.inf, "camera_to_world\\[2\\] holds NaN or infinite values"),
        (("points", "min_confidence"), math.nan, "points.min_confidence is NaN"),
        (("timings", "align"), math.nan, "timings.align is NaN"),
        (("settings", "noise"), math.nan, "settings cannot be stored as JSON"),
    ],
    "out-of-range": [
        (("width",), 0, "width is 0; it must be a whole number in 1..65536"),
        (("height",), 70000, "height is 70000"),
        (("fps",), 0, "fps is 0"),
        (("fps",), -24.0, "fps is -24.0"),
        (("intrinsics", "fx"), 0.0, "intrinsics.fx is 0.0; it must be a positive finite number"),
        (("intrinsics", "fy"), -10, "intrinsics.fy is -10"),
        (
            ("source", "frames", 0),
            -1,
            "source.frames\\[0\\] is -1; it must be a whole number in 0..2147483647",
        ),
        (
            ("source", "frames", 1),
            10,
            "source.frames\\[1\\] is 10 after 10; source frame numbers must strictly",
        ),
        (("source", "frames"), [12, 11, 10], "source.frames\\[1\\] is 11 after 12"),
        (("points", "max_points_per_frame"), 0, "points.max_points_per_frame is 0"),
        (("timings", "align"), -1.5, "timings.align is -1.5"),
        (("settings", "frame_mapping", "scale_x"), 0, "settings.frame_mapping.scale_x is 0"),
        (("settings", "frame_mapping", "crop_top"), -2, "settings.frame_mapping.crop_top is -2"),
        (("settings", "reconstruction"), "fast", 'settings.reconstruction is "fast"; it must be an object'),
    ],
    "int-beyond-range": [
        (("source", "frames", 2), 2**31, "source.frames\\[2\\] is 2147483648"),
        (("source", "frames", 2), 10**30, "source.frames\\[2\\] is 1000000000000000000000000000000"),
        (("width",), 2**70, "width is 1180591620717411303424"),
        (("fps",), 10**400, "fps is 100000000000000000000000000000000000..."),
        (("intrinsics", "cx"), 10**400, "intrinsics.cx is 1000000000"),
        (
            ("camera_to_world", 1, 0, 3),
            10**400,
            "camera_to_world\\[1\\] holds a number beyond the float range",
        ),
    ],
    "camera-pose": [
        (("camera_to_world", 1), ZEROS, "camera_to_world\\[1\\] is not a rotation \\(det 0,"),
        (("camera_to_world", 2), MIRROR, "camera_to_world\\[2\\] is not a rotation \\(det -1,"),
        (("camera_to_world", 0), SCALED, "camera_to_world\\[0\\] is not a rotation \\(det 8,"),
        (("camera_to_world", 1, 3), [0, 0, 1, 1], "camera_to_world\\[1\\] has a last row other than"),
        (("camera_to_world", 1, 0, 3), 1e12, "camera_to_world\\[1\\] puts the camera beyond 1e\\+09"),
    ],
    "frame-names": [
        (
            ("frames", 1),
            "../../secret.ply",
            "frames\\[1\\] is \"../../secret.ply\"; it must be 'frames/000001.ply'",
        ),
        (("frames", 0), "/etc/passwd", 'frames\\[0\\] is "/etc/passwd"'),
        (
            ("frames", 0),
            "frames/000001.ply",
            "frames\\[0\\] is \"frames/000001.ply\"; it must be 'frames/000000.ply'",
        ),
        (("frames", 2), 2, "frames\\[2\\] is 2"),
    ],
    "lengths": [
        (("frames",), [], "frames is empty; a result has at least one frame"),
        (("camera_to_world",), [np.eye(4).tolist()] * 4, "camera_to_world has 4 entries but frames has 3"),
        (("source", "frames"), [10, 11], "source.frames has 2 entries but frames has 3"),
        (("frames",), ["frames/000000.ply"], "source.frames has 3 entries but frames has 1"),
    ],
}


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [case for cases in BAD_ENTRIES.values() for case in cases],
    ids=[f"{kind}-{'.'.join(map(str, case[0]))}" for kind, cases in BAD_ENTRIES.items() for case in cases],
)
def test_a_bad_entry_is_refused_naming_the_file_and_the_field(stored, where, value, message):
    found = refusal(json.dumps(edited(stored, where, value)))
    assert found.startswith("shot/reconstruction.json: ")
    assert found.endswith("Fix the file or reconstruct the result again.")
    assert re.search(message, found), found


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{broken", "is damaged and cannot be parsed"),
        ("[" * 100_000 + "]" * 100_000, "is damaged and cannot be parsed"),
        ('{"fps": ' + "9" * 5000 + "}", "is damaged and cannot be parsed"),
        (b"\xff\xfe\x00", "is damaged and cannot be parsed"),
        ("[]", "is not a Geo4D reconstruction"),
        ('{"format": "colmap"}', "is not a Geo4D reconstruction"),
        ('{"format": "geo4d-reconstruction", "version": true}', "has format version true"),
        (
            '{"format": "geo4d-reconstruction", "version": 2}',
            "has format version 2; this add-on reads version 1",
        ),
    ],
    ids=[
        "syntax",
        "deep-nesting",
        "huge-integer",
        "bad-encoding",
        "array",
        "other-format",
        "bool-version",
        "v2",
    ],
)
def test_text_that_is_not_our_json_is_refused(text, message):
    assert message in refusal(text)


def test_the_writer_and_the_reader_share_one_rule(tmp_path):
    original = make_reconstruction()
    folder = original.save(tmp_path / "result", min_confidence=0.25, max_points_per_frame=9)
    description = read_description(folder)
    assert json.loads((folder / "reconstruction.json").read_text()) == description.to_json()
    assert description.source_frames == (10, 11, 12) and description.frames[2] == "frames/000002.ply"
    np.testing.assert_array_equal(description.camera_to_world, original.camera_to_world)
    assert not description.camera_to_world.flags.writeable
    assert (description.fps, description.width, description.height) == (24.0, 8, 6)
    assert description.intrinsics == original.intrinsics
    assert (description.points.min_confidence, description.points.max_points_per_frame) == (0.25, 9)
    assert (description.settings, description.timings, description.warnings) == (
        {"stride": 4},
        {"align": 1.5},
        ("window 2 looked wrong",),
    )


def test_whole_numbers_and_tiny_rounding_are_accepted(stored):
    content = edited(stored, ("fps",), 30)
    content["intrinsics"] = {"fx": 10, "fy": 10, "cx": 4, "cy": 3}
    content["camera_to_world"][1][0][0] += 1e-7
    content["source"]["video"] = None
    description = parse_description(content)
    assert description.fps == 30.0 and isinstance(description.fps, float)
    assert description.source_video is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda result: result.camera_to_world.__setitem__(1, 0.0),
            "camera_to_world\\[1\\] is not a rotation",
        ),
        (lambda result: setattr(result, "fps", True), "fps is true"),
        (lambda result: result.warnings.append(7), "warnings\\[1\\] is 7"),
        (lambda result: result.settings.update(seed=np.int64(3)), "settings cannot be stored as JSON"),
    ],
    ids=["zero-camera", "bool-fps", "number-warning", "numpy-setting"],
)
def test_the_writer_refuses_what_the_reader_would_before_writing_anything(tmp_path, damage, message):
    result = make_reconstruction()
    damage(result)
    with pytest.raises(Geo4DError, match=f"The result cannot be saved: {message}"):
        result.save(tmp_path / "result")
    assert not (tmp_path / "result").exists()


def test_loading_a_damaged_file_names_its_path(tmp_path, stored):
    folder = make_reconstruction().save(tmp_path / "result")
    (folder / "reconstruction.json").write_text(json.dumps(edited(stored, ("frames",), 5)))
    with pytest.raises(Geo4DError, match=f"^{folder / 'reconstruction.json'}: frames is 5;"):
        Reconstruction.load(folder)


def test_metrics_with_truth_lacking_cx_prints_one_line(tmp_path, capsys):
    make_reconstruction().save(tmp_path / "prediction")
    truth = make_reconstruction().save(tmp_path / "truth")
    content = json.loads((truth / "reconstruction.json").read_text())
    del content["intrinsics"]["cx"]
    (truth / "reconstruction.json").write_text(json.dumps(content))
    assert cli_main(COMMANDS, ["metrics", str(tmp_path / "prediction"), str(truth)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"geo4d: error: {truth / 'reconstruction.json'}: intrinsics lacks cx. "
        "Fix the file or reconstruct the result again.\n"
    )


def test_frame_confidence_is_optional_checked_and_kept(tmp_path, stored):
    assert "frame_confidence" not in stored  # results without it (all earlier ones) stay readable
    assert parse_description(json.dumps(stored)).frame_confidence is None
    original = make_reconstruction()
    original.frame_confidence = np.array([1.0, 0.25, 0.0])
    loaded = Reconstruction.load(original.save(tmp_path / "result"))
    np.testing.assert_array_equal(loaded.frame_confidence, [1.0, 0.25, 0.0])
    assert read_description(tmp_path / "result").frame_confidence == (1.0, 0.25, 0.0)
    assert "frame_confidence[1] is 1.5; it must be a number in 0..1" in refusal(
        json.dumps({**stored, "frame_confidence": [1.0, 1.5, 0.0]})
    )
    assert "frame_confidence has 2 entries but frames has 3" in refusal(
        json.dumps({**stored, "frame_confidence": [1.0, 0.5]})
    )
    with pytest.raises(ValueError, match="frame_confidence has shape"):
        make_reconstruction().__class__(**{**vars(make_reconstruction()), "frame_confidence": np.ones(2)})

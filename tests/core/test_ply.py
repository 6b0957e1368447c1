"""Point files: exact round trips, and every kind of damaged header or body refused with the file named."""

import re

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.ply import MAX_POINTS, POINT_DTYPE, read_layout, read_points, write_points
from geo4d.core.result import Intrinsics, Reconstruction, frame_file_name

COUNT = 5


def valid_bytes(tmp_path, count: int = COUNT) -> bytes:
    """A point file as write_points writes it, with `count` random points."""
    rng = np.random.default_rng(0)
    path = tmp_path / "made.ply"
    write_points(path, rng.normal(size=(count, 3)), rng.integers(0, 256, (count, 3)), rng.random(count))
    return path.read_bytes()


def header_replaced(old: bytes, new: bytes):
    def damage(data: bytes) -> bytes:
        assert old in data
        return data.replace(old, new, 1)

    return damage


def coordinate_set(field: str, value: float):
    """Set one coordinate of point 3 in the body (the header stays valid)."""

    def damage(data: bytes) -> bytes:
        offset = data.index(b"end_header\n") + len(b"end_header\n")
        points = np.frombuffer(data[offset:], dtype=POINT_DTYPE).copy()
        points[field][3] = value
        return data[:offset] + points.tobytes()

    return damage


HEADER_AND_SIZE_DAMAGE = {
    "negative-count": (
        header_replaced(b"vertex 5", b"vertex -1"),
        "'element vertex -1' is not a whole number",
    ),
    "text-count": (header_replaced(b"vertex 5", b"vertex abc"), "'element vertex abc' is not a whole number"),
    "fraction-count": (header_replaced(b"vertex 5", b"vertex 5.0"), "is not a whole number"),
    "huge-count": (header_replaced(b"vertex 5", b"vertex 4294967296"), f"from 0 to {MAX_POINTS}"),
    "count-above-limit": (header_replaced(b"vertex 5", f"vertex {MAX_POINTS + 1}".encode()), "whole number"),
    "missing-x": (header_replaced(b"property float x\n", b""), "lacks the point properties x"),
    "missing-colours": (
        header_replaced(b"property uchar red\nproperty uchar green\n", b""),
        "lacks the point properties red, green",
    ),
    "unknown-type": (header_replaced(b"property float x", b"property half x"), "unsupported property line"),
    "list-property": (
        header_replaced(b"property float x", b"property list uchar int x"),
        "unsupported property line",
    ),
    "integer-x": (header_replaced(b"property float x", b"property int x"), "'x' is stored as int"),
    "float-colour": (
        header_replaced(b"property uchar red", b"property float red"),
        "'red' is stored as float",
    ),
    "duplicate-property": (header_replaced(b"property float y", b"property float x"), "'x' appears twice"),
    "second-element": (
        header_replaced(b"end_header", b"element face 0\nproperty list uchar int vertex_indices\nend_header"),
        "a second element",
    ),
    "other-element": (header_replaced(b"element vertex", b"element point"), "not 'element vertex COUNT'"),
    "no-element": (header_replaced(b"element vertex 5\n", b""), "comes before 'element vertex'"),
    "ascii-format": (
        header_replaced(b"binary_little_endian", b"ascii"),
        "not 'format binary_little_endian 1.0'",
    ),
    "big-endian": (header_replaced(b"binary_little_endian", b"binary_big_endian"), "the second line is"),
    "unknown-line": (
        header_replaced(b"end_header", b"colour 3\nend_header"),
        "unexpected header line 'colour 3'",
    ),
    "non-ascii-header": (header_replaced(b"property float z", b"property float \xc3\xa9"), "not ASCII"),
    "no-magic": (header_replaced(b"ply\n", b"PLY\n"), "does not start with the line 'ply'"),
    "no-end-header": (header_replaced(b"end_header\n", b"end_headr\n"), "no 'end_header' line"),
    "overlong-header": (header_replaced(b"ply\n", b"ply\ncomment " + b"x" * 5000 + b"\n"), "no 'end_header'"),
    "truncated": (lambda data: data[:-10], "truncated: the header declares 5 points (95 bytes) but only 85"),
    "count-above-body": (header_replaced(b"vertex 5", b"vertex 6"), "truncated"),
    "trailing-bytes": (lambda data: data + b"\0" * 7, "7 bytes follow the 5 points"),
    "count-below-body": (header_replaced(b"vertex 5", b"vertex 4"), "19 bytes follow the 4 points"),
    "random-bytes": (
        lambda data: np.random.default_rng(1).bytes(len(data)),
        "does not start with the line 'ply'",
    ),
    "empty": (lambda data: b"", "does not start with the line 'ply'"),
}
BODY_DAMAGE = {
    "nan-x": (coordinate_set("x", np.nan), "1 of 5 points have non-finite coordinates \\(first: point 3\\)"),
    "inf-y": (coordinate_set("y", np.inf), "non-finite coordinates"),
    "minus-inf-z": (coordinate_set("z", -np.inf), "non-finite coordinates"),
}


def refusal(tmp_path, damage, reader) -> str:
    path = tmp_path / "damaged.ply"
    path.write_bytes(damage(valid_bytes(tmp_path)))
    with pytest.raises(Geo4DError) as raised:
        reader(path)
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    return message


@pytest.mark.parametrize(("damage", "problem"), HEADER_AND_SIZE_DAMAGE.values(), ids=HEADER_AND_SIZE_DAMAGE)
def test_damaged_header_or_size_is_refused_by_both_checks(tmp_path, damage, problem):
    for reader in (read_layout, read_points):
        assert re.search(re.escape(problem), refusal(tmp_path, damage, reader))


@pytest.mark.parametrize(("damage", "problem"), BODY_DAMAGE.values(), ids=BODY_DAMAGE)
def test_non_finite_coordinates_are_refused_when_the_points_are_read(tmp_path, damage, problem):
    assert re.search(problem, refusal(tmp_path, damage, read_points))
    path = tmp_path / "damaged.ply"
    assert read_layout(path).count == COUNT  # the cheap check reads no point: the header is whole


def test_round_trip_is_exact_and_the_layout_matches(tmp_path):
    rng = np.random.default_rng(2)
    xyz, rgb, confidence = rng.normal(size=(100, 3)), rng.integers(0, 256, (100, 3)), rng.random(100)
    path = tmp_path / "points.ply"
    write_points(path, xyz, rgb, confidence)
    points = read_points(path)
    np.testing.assert_array_equal(
        np.stack([points["x"], points["y"], points["z"]], -1), xyz.astype(np.float32)
    )
    np.testing.assert_array_equal(np.stack([points["red"], points["green"], points["blue"]], -1), rgb)
    np.testing.assert_array_equal(points["confidence"], confidence.astype(np.float32))
    layout = read_layout(path)
    assert (layout.count, layout.dtype.itemsize) == (100, 19)
    assert layout.body_offset + 100 * 19 == path.stat().st_size
    write_points(path, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    assert len(read_points(path)) == 0


def test_other_valid_layouts_are_read(tmp_path):
    """Double coordinates, no confidence, comments and extra properties are all well-formed."""
    header = (
        b"ply\nformat binary_little_endian 1.0\ncomment made elsewhere\nelement vertex 2\n"
        b"property double x\nproperty double y\nproperty double z\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nproperty float nx\nend_header\n"
    )
    dtype = np.dtype(
        [(n, "<f8") for n in "xyz"] + [(n, "u1") for n in ("red", "green", "blue")] + [("nx", "<f4")]
    )
    body = np.zeros(2, dtype=dtype)
    body["x"] = [1.5, -2.0]
    path = tmp_path / "other.ply"
    path.write_bytes(header + body.tobytes())
    points = read_points(path)
    assert points.dtype.names == dtype.names and points["x"].tolist() == [1.5, -2.0]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(Geo4DError, match=f"Cannot read point file {re.escape(str(tmp_path))}.*missing.ply"):
        read_layout(tmp_path / "missing.ply")


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39], ids=["nan", "inf", "beyond-float32"])
def test_non_finite_points_are_never_written(tmp_path, value):
    path = tmp_path / "points.ply"
    xyz = np.ones((4, 3))
    xyz[2, 1] = value
    with pytest.raises(Geo4DError, match=f"Refusing to write {re.escape(str(path))}: 1 of 4 points"):
        write_points(path, xyz, np.zeros((4, 3)), np.ones(4))
    assert not path.exists()


def test_a_result_whose_points_overflow_writes_only_finite_points(tmp_path):
    """Finite depth whose unprojection leaves float32 range: those pixels carry no point."""
    depth = np.full((2, 4, 6), 2.0, dtype=np.float32)
    # Finite, but x = (u - cx) / fx * depth leaves float32 range where |u - cx| > 1: 4 of the row's 6 pixels.
    depth[0, 1, :] = 3e38
    camera_to_world = np.tile(np.eye(4), (2, 1, 1))
    result = Reconstruction(
        camera_to_world=camera_to_world,
        intrinsics=Intrinsics(1.0, 1.0, 3.0, 2.0),
        depth=depth,
        confidence=np.ones_like(depth),
        color=np.zeros((*depth.shape, 3), dtype=np.uint8),
        fps=24.0,
    )
    xyz, rgb, confidence = result.frame_points(0)
    assert np.isfinite(xyz).all() and len(xyz) == len(rgb) == len(confidence) == 4 * 6 - 4
    folder = result.save(tmp_path / "result")
    assert len(read_points(folder / frame_file_name(0))) == 4 * 6 - 4
    assert len(read_points(folder / frame_file_name(1))) == 4 * 6

"""Binary little-endian PLY point files: x y z (float), red green blue (uchar), confidence (float).

Every file is checked against one strict reading of its header before anything uses it: Blender's own
PLY reader crashes on some damaged headers (a negative point count), so a file that is not exactly what
its header says is refused, with the file named, instead of being handed to Blender.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import Geo4DError

POINT_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("confidence", "<f4"),
    ]
)
# Most points one file may hold: more than an 8K frame has pixels, and far from Blender's 32-bit limits.
MAX_POINTS = 50_000_000
# A header longer than this is not one of ours (ours is under 200 bytes).
MAX_HEADER_BYTES = 4096

_MAGIC = b"ply\n"
_FORMAT_LINE = "format binary_little_endian 1.0"
_END_HEADER = b"end_header\n"
_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "<i2",
    "int16": "<i2",
    "ushort": "<u2",
    "uint16": "<u2",
    "int": "<i4",
    "int32": "<i4",
    "uint": "<u4",
    "uint32": "<u4",
    "float": "<f4",
    "float32": "<f4",
    "double": "<f8",
    "float64": "<f8",
}
_TYPE_NAMES = {"<f4": "float", "u1": "uchar"}
_FLOATS = ("float", "float32", "double", "float64")
# Properties every point file must have, with the PLY types allowed for each.
_REQUIRED = {
    "x": _FLOATS,
    "y": _FLOATS,
    "z": _FLOATS,
    "red": ("uchar", "uint8"),
    "green": ("uchar", "uint8"),
    "blue": ("uchar", "uint8"),
}
# Optional properties with a fixed meaning (files of early versions may lack confidence).
_OPTIONAL = {"confidence": _FLOATS}
_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PointFileLayout:
    """What a checked header says: the record type of one point, how many follow, where they start."""

    dtype: np.dtype
    count: int
    body_offset: int


def _damaged(path: Path, problem: str) -> Geo4DError:
    return Geo4DError(f"{path} is not a valid Geo4D point file: {problem}. Reconstruct the result again.")


def _quoted(line: str) -> str:
    """A header line as the message shows it: on one line, at most 60 characters."""
    return repr(line if len(line) <= 60 else line[:57] + "...")


def write_points(path: Path, xyz: np.ndarray, rgb: np.ndarray, confidence: np.ndarray) -> None:
    """Write N points: xyz [N, 3] float, rgb [N, 3] uint8 (the video's own 8-bit values), confidence [N].

    Refuses coordinates that are not finite in float32: no reader could place such points.
    """
    with np.errstate(over="ignore"):  # beyond float32 range becomes inf, refused below
        xyz = np.asarray(xyz, dtype=np.float32)
    if (
        xyz.ndim != 2
        or xyz.shape[1] != 3
        or np.shape(rgb) != xyz.shape
        or np.shape(confidence) != xyz.shape[:1]
    ):
        raise ValueError(
            f"write_points needs xyz [N, 3], rgb [N, 3] and confidence [N]; got {xyz.shape}, "
            f"{np.shape(rgb)} and {np.shape(confidence)}."
        )
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        raise Geo4DError(
            f"Refusing to write {path}: {np.count_nonzero(~finite)} of {len(xyz)} points have non-finite "
            "coordinates. The reconstruction is broken; report it with the settings used."
        )
    if len(xyz) > MAX_POINTS:
        raise Geo4DError(
            f"Refusing to write {path}: {len(xyz)} points exceed the limit of {MAX_POINTS} per frame. "
            "Set a limit on the points per frame."
        )
    records = np.empty(len(xyz), dtype=POINT_DTYPE)
    records["x"], records["y"], records["z"] = xyz.T
    records["red"], records["green"], records["blue"] = np.asarray(rgb, dtype=np.uint8).T
    records["confidence"] = confidence
    properties = "".join(
        f"property {_TYPE_NAMES[POINT_DTYPE[name].str.lstrip('|')]} {name}\n" for name in POINT_DTYPE.names
    )
    header = f"ply\n{_FORMAT_LINE}\nelement vertex {len(records)}\n{properties}end_header\n"
    with open(path, "wb") as stream:
        stream.write(header.encode("ascii"))
        stream.write(records.tobytes())


def read_layout(path: str | Path) -> PointFileLayout:
    """Check a point file's header and its size against it, without reading the points (cheap)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            return _read_layout(stream, path)
    except OSError as error:
        raise Geo4DError(f"Cannot read point file {path}: {error.strerror}.") from error


def read_points(path: str | Path) -> np.ndarray:
    """Read a point file into a structured array (fields named as in the file), everything checked.

    Raises Geo4DError naming the file for any header, size or content problem, non-finite x y z included.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            layout = _read_layout(stream, path)
            points = np.empty(layout.count, dtype=layout.dtype)
            stream.seek(layout.body_offset)
            read = stream.readinto(points.view(np.uint8))
    except OSError as error:
        raise Geo4DError(f"Cannot read point file {path}: {error.strerror}.") from error
    if read != points.nbytes:
        raise _damaged(path, f"it ended after {read} of its {points.nbytes} bytes of points while being read")
    finite = np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])
    if not finite.all():
        raise _damaged(
            path,
            f"{np.count_nonzero(~finite)} of {layout.count} points have non-finite coordinates "
            f"(first: point {int(np.argmin(finite))})",
        )
    return points


def _read_layout(stream, path: Path) -> PointFileLayout:
    """Parse and check the header at the start of `stream`, and the file size against it."""
    head = stream.read(MAX_HEADER_BYTES)
    if not head.startswith(_MAGIC):
        raise _damaged(path, "it does not start with the line 'ply'")
    end = head.find(b"\n" + _END_HEADER)
    if end < 0:
        raise _damaged(path, f"no 'end_header' line in its first {MAX_HEADER_BYTES} bytes")
    body_offset = end + 1 + len(_END_HEADER)
    try:
        lines = head[len(_MAGIC) : end].decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise _damaged(path, "its header is not ASCII text") from None
    if lines[0] != _FORMAT_LINE:
        raise _damaged(path, f"the second line is {_quoted(lines[0])}, not {_FORMAT_LINE!r}")
    count, fields = _parse_elements(lines[1:], path)
    try:
        dtype = np.dtype(fields)
    except ValueError as error:
        raise _damaged(path, f"its properties do not form a record ({error})") from error
    body_size = os.fstat(stream.fileno()).st_size - body_offset
    expected = count * dtype.itemsize
    if body_size < expected:
        raise _damaged(
            path,
            f"it is truncated: the header declares {count} points ({expected} bytes) but only {body_size} bytes follow",
        )
    if body_size > expected:
        raise _damaged(
            path,
            f"{body_size - expected} bytes follow the {count} points ({expected} bytes) that the header declares",
        )
    return PointFileLayout(dtype=dtype, count=count, body_offset=body_offset)


def _parse_elements(lines: list[str], path: Path) -> tuple[int, list[tuple[str, str]]]:
    """The vertex count and the (name, numpy type) of each property, from the header lines after the format."""
    count, fields = None, []
    for line in lines:
        words = line.split()
        keyword = words[0] if words else ""
        if keyword in ("comment", "obj_info"):
            continue
        if keyword == "element":
            if count is not None:
                raise _damaged(path, f"a second element {_quoted(line)}; only one, 'vertex', is allowed")
            if len(words) != 3 or words[1] != "vertex":
                raise _damaged(path, f"the element line is {_quoted(line)}, not 'element vertex COUNT'")
            if not _COUNT.fullmatch(words[2]) or int(words[2]) > MAX_POINTS:
                raise _damaged(
                    path, f"the point count in {_quoted(line)} is not a whole number from 0 to {MAX_POINTS}"
                )
            count = int(words[2])
        elif keyword == "property":
            if count is None:
                raise _damaged(path, f"the property line {_quoted(line)} comes before 'element vertex'")
            if len(words) != 3 or words[1] not in _PLY_TYPES:
                raise _damaged(
                    path,
                    f"unsupported property line {_quoted(line)}: only single values of a PLY number type",
                )
            if any(name == words[2] for name, _ in fields):
                raise _damaged(path, f"the property {words[2]!r} appears twice")
            fields.append((words[2], words[1]))
        else:
            raise _damaged(path, f"unexpected header line {_quoted(line)}")
    if count is None:
        raise _damaged(path, "its header has no 'element vertex' line")
    _check_properties(dict(fields), path)
    return count, [(name, _PLY_TYPES[kind]) for name, kind in fields]


def _check_properties(types: dict[str, str], path: Path) -> None:
    """Every required property present, and those with a fixed meaning stored in an allowed PLY type."""
    missing = [name for name in _REQUIRED if name not in types]
    if missing:
        raise _damaged(path, f"it lacks the point properties {', '.join(missing)}")
    for name, allowed in {**_REQUIRED, **_OPTIONAL}.items():
        if name in types and types[name] not in allowed:
            raise _damaged(
                path, f"the property {name!r} is stored as {types[name]}; it must be {' or '.join(allowed)}"
            )

"""Binary little-endian PLY point files: x y z (float), red green blue (uchar), confidence (float)."""

from __future__ import annotations

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
_PLY_TYPES = {"float": "<f4", "float32": "<f4", "uchar": "u1", "uint8": "u1", "double": "<f8", "int": "<i4"}
_TYPE_NAMES = {"<f4": "float", "u1": "uchar"}


def write_points(path: Path, xyz: np.ndarray, rgb: np.ndarray, confidence: np.ndarray) -> None:
    """Write N points: xyz [N, 3] float, rgb [N, 3] uint8 (the video's own 8-bit values), confidence [N]."""
    records = np.empty(len(xyz), dtype=POINT_DTYPE)
    records["x"], records["y"], records["z"] = np.asarray(xyz, dtype=np.float32).T
    records["red"], records["green"], records["blue"] = np.asarray(rgb, dtype=np.uint8).T
    records["confidence"] = confidence
    properties = "".join(
        f"property {_TYPE_NAMES[POINT_DTYPE[name].str.lstrip('|')]} {name}\n" for name in POINT_DTYPE.names
    )
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(records)}\n{properties}end_header\n"
    with open(path, "wb") as stream:
        stream.write(header.encode("ascii"))
        stream.write(records.tobytes())


def read_points(path: Path) -> np.ndarray:
    """Read a binary little-endian PLY of vertices into a structured array (fields named as in the file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise Geo4DError(f"Cannot read point file {path}: {error.strerror}.") from error
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise Geo4DError(f"{path} is not a PLY file (no 'ply' magic or no end_header).")
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise Geo4DError(f"{path}: only binary little-endian PLY files are supported.")
    count, fields, element = None, [], None
    for line in lines:
        words = line.split()
        if words[:1] == ["element"]:
            element = words[1]
            if element == "vertex":
                count = int(words[2])
        elif words[:1] == ["property"] and element == "vertex":
            if words[1] not in _PLY_TYPES:
                raise Geo4DError(f"{path}: unsupported vertex property type '{words[1]}'.")
            fields.append((words[2], _PLY_TYPES[words[1]]))
    if count is None:
        raise Geo4DError(f"{path}: no vertex element in the header.")
    dtype = np.dtype(fields)
    body = data[end + len(b"end_header\n") :]
    if len(body) < count * dtype.itemsize:
        raise Geo4DError(
            f"{path} is truncated: the header declares {count} points "
            f"({count * dtype.itemsize} bytes) but only {len(body)} bytes follow."
        )
    return np.frombuffer(body, dtype=dtype, count=count)

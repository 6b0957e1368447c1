"""Damage applied to a copy of a result folder, the user files placed around it, and a digest of them.

A workspace holds `result/` (the copy to damage), user files beside it and inside it, and `outside/`:
user files that symlinks in a damaged result point to (a copy of the frames, of the description, a
damaged PLY). Every damage is a small JSON-able dict (see fuzz_cases) applied here deterministically:
random bytes come from a generator seeded by the case. Numpy and the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
from pathlib import Path

RESULT = "result"
OUTSIDE = "outside"
JSON_NAME = "reconstruction.json"
# Size of one vertex record of our PLY files: x y z float, red green blue uchar, confidence float.
RECORD_SIZE = 19
HEADER_END = b"end_header\n"


def frame_name(index: int) -> str:
    return f"frames/{index:06d}.ply"


def make_workspace(base: Path, workspace: Path) -> None:
    """A fresh copy of the valid result `base` in workspace/result, with user files around and inside it."""
    if workspace.exists():
        shutil.rmtree(workspace)
    result = workspace / RESULT
    shutil.copytree(base, result)
    user = random.Random(str(workspace))
    (workspace / "notes.txt").write_text("Shot 12: client wants the camera moves kept.\n")
    (workspace / "renders").mkdir()
    (workspace / "renders" / "frame_0001.png").write_bytes(user.randbytes(2048))
    (result / "my notes.txt").write_text("Reviewed on Tuesday.\n")
    outside = workspace / OUTSIDE
    shutil.copytree(base / "frames", outside / "frames")
    shutil.copytree(base / "frames", outside / "damaged frames")
    bad = outside / "damaged frames" / Path(frame_name(1)).name
    bad.write_bytes(bad.read_bytes().replace(b"element vertex ", b"element vertex -", 1))
    shutil.copy(base / JSON_NAME, outside / JSON_NAME)
    shutil.copy(base / frame_name(1), outside / "frame.ply")


def tree_digest(root: Path, skip: str | None = None) -> dict[str, str]:
    """Every entry under root (symlinks not followed) -> its content hash, link target or "dir".

    skip: a relative path whose subtree is left out (a result folder damaged after the import).
    """
    digest = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if skip and (relative == skip or relative.startswith(skip + "/")):
                continue
            if path.is_symlink():
                digest[relative] = "link:" + os.readlink(path)
            elif path.is_dir():
                digest[relative] = "dir"
            else:
                digest[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def apply_damage(workspace: Path, damage: dict, seed: int) -> None:
    """Damage workspace/result as `damage` says; argument damages leave the files alone."""
    rng = random.Random(seed)
    kind = damage["kind"]
    if kind.startswith("json-"):
        _damage_json(workspace / RESULT / JSON_NAME, damage, rng)
    elif kind.startswith("ply-"):
        path = workspace / RESULT / frame_name(damage["frame"])
        path.write_bytes(_damage_ply(path.read_bytes(), damage, rng))
    elif kind == "file":
        _damage_files(workspace / RESULT, damage, rng)
    elif kind == "symlink":
        _damage_links(workspace, damage)


def _set_path(description: dict, path: list[str], value: object) -> None:
    target = description
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _damage_json(path: Path, damage: dict, rng: random.Random) -> None:
    kind, how = damage["kind"], damage.get("how")
    if kind == "json-text":
        path.write_bytes(_damage_json_text(path.read_bytes(), how, rng))
        return
    description = json.loads(path.read_text())
    if kind == "json-delete":
        target = description
        for key in damage["path"][:-1]:
            target = target[key]
        del target[damage["path"][-1]]
    elif kind == "json-set":
        _set_path(description, damage["path"], damage["value"])
    elif kind == "json-camera":
        description["camera_to_world"] = _damage_cameras(description["camera_to_world"], damage)
    elif kind == "json-source-frames":
        description["source"]["frames"] = _damage_index_list(description["source"]["frames"], how)
    elif kind == "json-frames":
        description["frames"] = _damage_frame_names(description["frames"], how, path.parent)
    path.write_text(json.dumps(description, indent=1))


def _damage_json_text(text: bytes, how: str, rng: random.Random) -> bytes:
    replacements = {
        "truncated-half": text[: len(text) // 2],
        "truncated-one-byte": text[:-1],
        "garbage": rng.randbytes(300),
        "empty": b"",
        "top-null": b"null",
        "top-list": b"[1, 2, 3]",
        "top-number": b"5",
        "deep-nesting": b'{"format": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
        "bom": b"\xef\xbb\xbf" + text,
        "utf16": text.decode().encode("utf-16"),
        "latin1-byte": text.replace(b'"video.mp4"', b'"vid\xe9o.mp4"', 1),
        "trailing-garbage": text + b"}{xyz",
        "comment": b"// written by hand\n" + text,
        "duplicate-key": text.replace(b'"fps":', b'"fps": 24.0, "fps": "fast", "_":', 1),
    }
    return replacements[how]


def _damage_cameras(matrices: list, damage: dict) -> list:
    how, frame = damage["how"], damage["frame"]
    matrix = matrices[frame]
    if how == "zero":
        matrix = [[0.0] * 4 for _ in range(4)]
    elif how == "reflected":
        matrix = [[-row[0], *row[1:]] for row in matrix[:3]] + [matrix[3]]
    elif how == "scaled":
        matrix = [[2 * v for v in row[:3]] + [row[3]] for row in matrix[:3]] + [matrix[3]]
    elif how == "sheared":
        matrix = [list(row) for row in matrix]
        matrix[0][1] += 0.5
    elif how == "nearly-rigid":
        matrix = [list(row) for row in matrix]
        matrix[0][0] += 1e-9
    elif how in ("nan", "inf", "string", "bool", "null", "huge-translation"):
        value = {
            "nan": float("nan"),
            "inf": float("inf"),
            "string": "1",
            "bool": True,
            "null": None,
            "huge-translation": 1e300,
        }[how]
        matrix = [list(row) for row in matrix]
        matrix[1][3] = value
    elif how == "rows-3x4":
        matrix = matrix[:3]
    elif how == "columns-4x3":
        matrix = [row[:3] for row in matrix]
    elif how == "projective":
        matrix = matrix[:3] + [[0.0, 0.0, 0.0, 2.0]]
    elif how == "bottom-row":
        matrix = matrix[:3] + [[1.0, 0.0, 0.0, 1.0]]
    elif how == "flat":
        matrix = [v for row in matrix for v in row]
    if how == "one-fewer":
        return matrices[:-1]
    if how == "one-more":
        return [*matrices, matrices[-1]]
    return [*matrices[:frame], matrix, *matrices[frame + 1 :]]


def _damage_index_list(indices: list, how: str) -> list:
    replacements = {
        "one-fewer": indices[:-1],
        "one-more": [*indices, indices[-1] + 1],
        "negative": [i - 1 for i in indices],
        "beyond-int": [*indices[:-1], 2**70],
        "strings": [str(i) for i in indices],
        "fractions": [i + 0.5 for i in indices],
        "bools": [True] * len(indices),
        "nulls": [None] * len(indices),
        "reversed": indices[::-1],
        "repeated": [indices[0]] * len(indices),
        "nested": [[i] for i in indices],
    }
    return replacements[how]


def _damage_frame_names(names: list, how: str, result: Path) -> list:
    """Frame names of reconstruction.json; the second listed file is the one renamed."""
    outside = result.parent / OUTSIDE
    replacements = {
        "parent-outside": "../outside/frames/000001.ply",
        "parent-inside": "frames/../frames/000001.ply",
        "absolute-outside": str(outside / "frames" / "000001.ply"),
        "absolute-inside": str(result / frame_name(1)),
        "empty-name": "",
        "folder-name": "frames",
        "absent": "frames/000099.ply",
        "upper-case": "frames/000001.PLY",
        "backslash": "frames\\000001.ply",
        "nul-byte": "frames/000001.ply\x00",
        "number": 5,
        "null": None,
    }
    if how in replacements:
        return [names[0], replacements[how], *names[2:]]
    if how == "duplicated":
        return [names[0]] * len(names)
    if how == "swapped":
        return [names[1], names[0], *names[2:]]
    if how == "one-fewer":
        return names[:-1]
    return [*names, frame_name(len(names))]  # one-more: a file that does not exist


def _header_and_body(data: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (without end_header) and the body of a PLY file."""
    end = data.index(HEADER_END)
    return data[: end - 1].split(b"\n"), data[end + len(HEADER_END) :]


def _join(lines: list[bytes], body: bytes, newline: bytes = b"\n") -> bytes:
    return newline.join([*lines, b"end_header"]) + newline + body


def _damage_ply(data: bytes, damage: dict, rng: random.Random) -> bytes:
    lines, body = _header_and_body(data)
    count = len(body) // RECORD_SIZE
    how = damage["how"]
    if damage["kind"] == "ply-count":
        value = {"plus-one": str(count + 1), "minus-one": str(count - 1)}.get(how, how)
        vertex = b"element vertex " + value.encode()
        return _join([vertex if line.startswith(b"element vertex") else line for line in lines], body)
    if damage["kind"] == "ply-header":
        return _damage_ply_header(lines, body, how)
    return _damage_ply_body(lines, body, count, how, rng)


def _damage_ply_header(lines: list[bytes], body: bytes, how: str) -> bytes:
    def replaced(old: bytes, new: bytes | None) -> list[bytes]:
        return [line for line in (new if line == old else line for line in lines) if line is not None]

    edits = {
        "missing-x": replaced(b"property float x", None),
        "unknown-type": replaced(b"property float x", b"property float16 x"),
        "made-up-type": replaced(b"property float x", b"property quux x"),
        "double-x": replaced(b"property float x", b"property double x"),
        "list-property": [*lines, b"property list uchar int vertex_indices"],
        "repeated-x": [*lines, b"property float x"],
        "ascii-format": replaced(b"format binary_little_endian 1.0", b"format ascii 1.0"),
        "big-endian": replaced(b"format binary_little_endian 1.0", b"format binary_big_endian 1.0"),
        "format-version-2": replaced(b"format binary_little_endian 1.0", b"format binary_little_endian 2.0"),
        "no-format-line": replaced(b"format binary_little_endian 1.0", None),
        "bad-magic": [b"plx", *lines[1:]],
        "comment": [lines[0], lines[1], b"comment made by hand", *lines[2:]],
        "empty-face-element": [*lines, b"element face 0", b"property list uchar int vertex_indices"],
        "face-element": [*lines, b"element face 5", b"property list uchar int vertex_indices"],
        "renamed-element": [line.replace(b"element vertex", b"element point") for line in lines],
        "non-ascii": [lines[0], lines[1], b"comment caf\xc3\xa9 \xff", *lines[2:]],
        "swapped-xz": [
            {b"property float x": b"property float z", b"property float z": b"property float x"}.get(
                line, line
            )
            for line in lines
        ],
    }
    if how == "no-end-header":
        return b"\n".join(lines) + b"\n" + body
    if how == "crlf":
        return _join(lines, body, b"\r\n")
    if how == "header-only":
        return _join(lines, b"")
    return _join(edits[how], body)


def _damage_ply_body(lines: list[bytes], body: bytes, count: int, how: str, rng: random.Random) -> bytes:
    if how == "random-file":
        return rng.randbytes(rng.randrange(1, 4000))
    if how == "empty-file":
        return b""
    if how == "truncated-one-byte":
        return _join(lines, body[:-1])
    if how == "truncated-half":
        return _join(lines, body[: len(body) // 2])
    if how == "truncated-in-header":
        return _join(lines, b"")[: len(b"\n".join(lines)) // 2]
    if how == "trailing-bytes":
        return _join(lines, body + rng.randbytes(7))
    if how == "trailing-record":
        return _join(lines, body + body[:RECORD_SIZE])
    records = bytearray(body)
    point = rng.randrange(count)
    fields = {"x": 0, "y": 4, "z": 8, "confidence": 15}
    values = {
        "nan-x": [("x", float("nan"))],
        "inf-z": [("z", float("inf"))],
        "minus-inf-y": [("y", float("-inf"))],
        "huge-finite": [("x", 3e38)],
        "nan-confidence": [("confidence", float("nan"))],
    }
    if how == "all-nan":
        for offset in range(0, len(records), RECORD_SIZE):
            records[offset : offset + 12] = struct.pack("<3f", *[float("nan")] * 3)
    else:
        for name, value in values[how]:
            offset = point * RECORD_SIZE + fields[name]
            records[offset : offset + 4] = struct.pack("<f", value)
    return _join(lines, bytes(records))


def _damage_files(result: Path, damage: dict, rng: random.Random) -> None:
    how = damage["how"]
    frame = result / frame_name(damage.get("frame", 1))
    if how == "missing-frame":
        frame.unlink()
    elif how == "frame-is-folder":
        frame.unlink()
        frame.mkdir()
        (frame / "inside.ply").write_bytes(b"ply\n")
    elif how == "frames-removed":
        shutil.rmtree(result / "frames")
    elif how == "frames-is-file":
        shutil.rmtree(result / "frames")
        (result / "frames").write_bytes(b"not a folder")
    elif how == "missing-json":
        (result / JSON_NAME).unlink()
    elif how == "json-is-folder":
        (result / JSON_NAME).unlink()
        (result / JSON_NAME).mkdir()
    elif how == "missing-depth":
        (result / "depth.npz").unlink()
    elif how == "depth-garbage":
        (result / "depth.npz").write_bytes(rng.randbytes(500))
    elif how == "missing-video":
        (result / "video.mp4").unlink()
    elif how == "video-text":
        (result / "video.mp4").write_text("this is not a video\n")
    elif how == "video-empty":
        (result / "video.mp4").write_bytes(b"")
    elif how == "extra-frame-file":
        (result / frame_name(99)).write_bytes(rng.randbytes(100))
    elif how == "hidden-file":
        (result / "frames" / ".DS_Store").write_bytes(rng.randbytes(100))


def _damage_links(workspace: Path, damage: dict) -> None:
    result, outside = workspace / RESULT, workspace / OUTSIDE
    how = damage["how"]
    frame = result / frame_name(damage.get("frame", 1))

    def link(path: Path, target: str | Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.symlink_to(target)

    if how == "frame-to-outside":
        link(frame, outside / "frame.ply")
    elif how == "frame-to-missing":
        link(frame, outside / "no such frame.ply")
    elif how == "frame-loop":
        link(frame, frame.with_name("loop.ply"))
        frame.with_name("loop.ply").symlink_to(frame.name)
    elif how == "frame-to-itself":
        link(frame, frame.name)
    elif how == "frame-to-folder":
        link(frame, outside / "frames")
    elif how == "frames-to-outside":
        link(result / "frames", outside / "frames")
    elif how == "frames-to-damaged":
        link(result / "frames", outside / "damaged frames")
    elif how == "frames-to-missing":
        link(result / "frames", outside / "no such folder")
    elif how == "json-to-outside":
        link(result / JSON_NAME, outside / JSON_NAME)
    elif how == "json-loop":
        link(result / JSON_NAME, result / JSON_NAME)
    elif how == "video-loop":
        link(result / "video.mp4", "video.mp4")
    elif how == "depth-to-missing":
        link(result / "depth.npz", outside / "no such depth.npz")
    elif how == "result-is-link":
        shutil.move(result, outside / "real result")
        result.symlink_to(outside / "real result")

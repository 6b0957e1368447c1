"""What each damage of the fuzz suite is and what an import must do with it: the tables of the catalogue.

Each table maps a damage (by its `how`, or a field and a replacement value) to its expectation:
"refuse" (the import must refuse it) or "either" (a refusal and a faithful scene are both right).
"""

from __future__ import annotations

from fuzz_damage import JSON_NAME

FRAMES = 4
# The frame a damage of a later frame hits (frame 0 is the one the importer reads first).
LATER_FRAME = 2
MAX_FRAME = 1048574

FILE = [JSON_NAME]
NAN, INF = float("nan"), float("inf")
# Values that replace a field of reconstruction.json, with the labels the case ids use.
VALUES = {
    "null": None,
    "true": True,
    "false": False,
    "text": "text",
    "empty-text": "",
    "empty-list": [],
    "empty-object": {},
    "pair": [1, 2],
    "object": {"a": 1},
    "2**70": 2**70,
    "-1": -1,
    "0": 0,
    "0.5": 0.5,
    "3": 3,
    "NaN": NAN,
    "Infinity": INF,
    "-Infinity": -INF,
    "digit-text": "1",
}
# For each field, the values above that a faithful import may accept (all others must be refused).
# A size, fps or principal point that is a number in range is data, not damage; the scene checks then
# verify that the import reproduces it exactly.
FIELDS = {
    ("format",): (),
    ("version",): (),
    ("source",): (),
    ("source", "video"): ("null", "text", "empty-text", "digit-text"),
    ("source", "frames"): (),
    ("fps",): ("0.5", "3", "2**70"),
    ("width",): ("3", "2**70"),
    ("height",): ("3", "2**70"),
    ("intrinsics",): (),
    ("intrinsics", "fx"): (),
    ("intrinsics", "fy"): (),
    ("intrinsics", "cx"): ("2**70", "-1", "0", "0.5", "3"),
    ("intrinsics", "cy"): ("2**70", "-1", "0", "0.5", "3"),
    ("camera_to_world",): (),
    ("frames",): (),
    ("points",): tuple(VALUES),
    ("settings",): tuple(VALUES),
    ("timings",): tuple(VALUES),
    ("warnings",): tuple(VALUES),
}
OPTIONAL_FIELDS = {("source", "video"), ("points",), ("settings",), ("timings",), ("warnings",)}
CAMERA_DAMAGE = {
    "zero": "refuse",
    "reflected": "refuse",
    "scaled": "refuse",
    "sheared": "refuse",
    "nearly-rigid": "either",
    "nan": "refuse",
    "inf": "refuse",
    "string": "refuse",
    "bool": "refuse",
    "null": "refuse",
    "huge-translation": "either",
    "rows-3x4": "refuse",
    "columns-4x3": "refuse",
    "projective": "refuse",
    "bottom-row": "refuse",
    "flat": "refuse",
    "one-fewer": "refuse",
    "one-more": "refuse",
}
SOURCE_FRAMES_DAMAGE = {
    "one-fewer": "refuse",
    "one-more": "refuse",
    "negative": "either",
    "beyond-int": "refuse",
    "strings": "refuse",
    "fractions": "refuse",
    "bools": "refuse",
    "nulls": "refuse",
    "reversed": "either",
    "repeated": "either",
    "nested": "refuse",
}
FRAME_NAMES_DAMAGE = {
    "parent-outside": "refuse",
    "parent-inside": "either",
    "absolute-outside": "refuse",
    "absolute-inside": "either",
    "empty-name": "refuse",
    "folder-name": "refuse",
    "absent": "refuse",
    "upper-case": "refuse",
    "backslash": "refuse",
    "nul-byte": "refuse",
    "number": "refuse",
    "null": "refuse",
    "duplicated": "either",
    "swapped": "either",
    "one-fewer": "refuse",
    "one-more": "refuse",
}
JSON_TEXT_DAMAGE = {
    "truncated-half": "refuse",
    "truncated-one-byte": "refuse",
    "garbage": "refuse",
    "empty": "refuse",
    "top-null": "refuse",
    "top-list": "refuse",
    "top-number": "refuse",
    "deep-nesting": "refuse",
    "bom": "either",
    "utf16": "either",
    "latin1-byte": "either",
    "trailing-garbage": "refuse",
    "comment": "refuse",
    "duplicate-key": "refuse",
}
PLY_COUNT_DAMAGE = {
    "-1": "refuse",
    "abc": "refuse",
    "1.5": "refuse",
    "": "refuse",
    "99999999999999999999": "refuse",
    "2147483648": "refuse",
    "9223372036854775808": "refuse",
    "plus-one": "refuse",
    "minus-one": "either",
    "0": "either",
}
PLY_HEADER_DAMAGE = {
    "missing-x": "refuse",
    "unknown-type": "refuse",
    "made-up-type": "refuse",
    "double-x": "refuse",
    "list-property": "refuse",
    "repeated-x": "refuse",
    "ascii-format": "refuse",
    "big-endian": "refuse",
    "format-version-2": "refuse",
    "no-format-line": "refuse",
    "bad-magic": "refuse",
    "comment": "either",
    "empty-face-element": "either",
    "face-element": "refuse",
    "renamed-element": "refuse",
    "non-ascii": "either",
    "swapped-xz": "either",
    "no-end-header": "refuse",
    "crlf": "either",
    "header-only": "refuse",
}
PLY_BODY_DAMAGE = {
    "random-file": "refuse",
    "empty-file": "refuse",
    "truncated-one-byte": "refuse",
    "truncated-half": "refuse",
    "truncated-in-header": "refuse",
    "trailing-bytes": "either",
    "trailing-record": "either",
    "nan-x": "refuse",
    "inf-z": "refuse",
    "minus-inf-y": "refuse",
    "huge-finite": "either",
    "nan-confidence": "either",
    "all-nan": "refuse",
}
# What a frame whose PLY damage may be imported must show, next to the undamaged file's points.
PLY_SHOWS = {
    "minus-one": "all-but-last",
    "0": "none",
    "comment": "same",
    "empty-face-element": "same",
    "non-ascii": "same",
    "swapped-xz": "swapped-xz",
    "crlf": "same",
    "trailing-bytes": "same",
    "trailing-record": "same",
    "huge-finite": "same-count",
    "nan-confidence": "same",
}
# File damage: (expect, words a refusal names); None: the frame file's own name.
FILE_DAMAGE = {
    "missing-frame": ("refuse", None),
    "frame-is-folder": ("refuse", None),
    "frames-removed": ("refuse", ["frames"]),
    "frames-is-file": ("refuse", ["frames"]),
    "missing-json": ("refuse", FILE),
    "json-is-folder": ("refuse", FILE),
    "missing-depth": ("either", ["depth.npz"]),
    "depth-garbage": ("either", ["depth.npz"]),
    "missing-video": ("either", ["video.mp4"]),
    "video-text": ("either", ["video.mp4"]),
    "video-empty": ("either", ["video.mp4"]),
    "extra-frame-file": ("either", ["000099.ply"]),
    "hidden-file": ("either", [".DS_Store"]),
}
LINK_DAMAGE = {
    "frame-to-outside": ("either", None),
    "frame-to-missing": ("refuse", None),
    "frame-loop": ("refuse", None),
    "frame-to-itself": ("refuse", None),
    "frame-to-folder": ("refuse", None),
    "frames-to-outside": ("either", ["frames"]),
    "frames-to-damaged": ("refuse", ["000001.ply"]),
    "frames-to-missing": ("refuse", ["frames"]),
    "json-to-outside": ("either", FILE),
    "json-loop": ("refuse", FILE),
    "video-loop": ("either", ["video.mp4"]),
    "depth-to-missing": ("either", ["depth.npz"]),
    "result-is-link": ("either", ["result"]),
}
FRAME_DAMAGES = {"missing-frame", "frame-is-folder"} | {h for h in LINK_DAMAGE if h.startswith("frame-")}
# Import options given badly (ImportOptions and the operator's properties): value label -> (value, expect).
ARGUMENTS = {
    "frame_start": {
        "-1": (-1, "refuse"),
        "past-last-frame": (MAX_FRAME + 1, "refuse"),
        "frames-past-last": (MAX_FRAME - FRAMES + 2, "refuse"),
        "last-start": (MAX_FRAME - FRAMES + 1, "either"),
        "2**31": (2**31, "refuse"),
        "2**70": (2**70, "refuse"),
        "NaN": (NAN, "refuse"),
        "digit-text": ("1", "refuse"),
        "null": (None, "refuse"),
        "1.5": (1.5, "refuse"),
        "0": (0, "either"),
    },
    "storage": {
        "X": ("X", "refuse"),
        "empty-text": ("", "refuse"),
        "null": (None, "refuse"),
        "3": (3, "refuse"),
        "lower-case": ("streamed", "refuse"),
        "list": (["STREAMED"], "refuse"),
    },
    "point_size": {
        "NaN": (NAN, "refuse"),
        "Infinity": (INF, "refuse"),
        "-Infinity": (-INF, "refuse"),
        "-1": (-1.0, "refuse"),
        "0": (0.0, "refuse"),
        "1e9": (1e9, "refuse"),
        "digit-text": ("1", "refuse"),
        "null": (None, "refuse"),
        "1000": (1000.0, "either"),
        "0.01": (0.01, "either"),
    },
    "point_radius": {
        "NaN": (NAN, "refuse"),
        "Infinity": (INF, "refuse"),
        "-1": (-1.0, "refuse"),
        "digit-text": ("0", "refuse"),
        "null": (None, "refuse"),
        "1e6": (1e6, "either"),
    },
}
# The names the File > Import dialog shows for the options.
ARGUMENT_LABELS = {
    "frame_start": "start frame",
    "storage": "storage",
    "point_size": "point size",
    "point_radius": "fixed radius",
}
# The result folder given badly: how -> expect.
FOLDER_ARGUMENTS = {
    "missing": "refuse",
    "a-file": "refuse",
    "empty": "refuse",
    "nul-byte": "refuse",
    "name-too-long": "refuse",
    "the-json-file": "either",
    "relative": "refuse",
}

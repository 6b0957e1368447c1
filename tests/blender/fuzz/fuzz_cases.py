"""The fuzz cases of the importer: every damage the suite knows, what each must lead to, and seeded samples.

A damage is a JSON-able dict: `kind` and its parameters (see fuzz_damage), `expect` ("refuse": the
importer must refuse it; "either": a refusal or a faithful scene are both right) and `names`: groups of
words, one of each group must appear in a refusal (the file and the field or argument at fault); a PLY
damage an import may accept says in `shows` what its frame must then show.
A case adds how it is imported (`route`: the Python function or the operator), `when` the damage happens
(`before` the import, or `after` it and before the saved .blend is opened again), whether the saved
.blend is reopened, and a seed for the damage's random bytes.
"""

from __future__ import annotations

import random

from fuzz_damage import JSON_NAME, frame_name

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


def _field_names(path: tuple[str, ...]) -> list[list[str]]:
    return [FILE, [path[0], path[-1]]]


def catalogue() -> list[dict]:
    """Every damage, once; frame damages once for frame 0 and once for a later frame."""
    damages = []
    for path in FIELDS:
        expect = "either" if path in OPTIONAL_FIELDS else "refuse"
        damages.append(
            {"kind": "json-delete", "path": list(path), "expect": expect, "names": _field_names(path)}
        )
    for path, accepted in FIELDS.items():
        for label, value in VALUES.items():
            expect = "either" if label in accepted else "refuse"
            damage = {"kind": "json-set", "path": list(path), "value": value, "label": label}
            damages.append(damage | {"expect": expect, "names": _field_names(path)})
    for frame in (0, LATER_FRAME):
        for how, expect in CAMERA_DAMAGE.items():
            names = [FILE, ["camera_to_world"]]
            damages.append(
                {"kind": "json-camera", "how": how, "frame": frame, "expect": expect, "names": names}
            )
    tables = (
        ("json-source-frames", SOURCE_FRAMES_DAMAGE, [FILE, ["source"]]),
        ("json-frames", FRAME_NAMES_DAMAGE, [[JSON_NAME, "frames"]]),
        ("json-text", JSON_TEXT_DAMAGE, [FILE]),
    )
    for kind, table, names in tables:
        damages += [
            {"kind": kind, "how": how, "expect": expect, "names": names} for how, expect in table.items()
        ]
    for kind, table in (
        ("ply-count", PLY_COUNT_DAMAGE),
        ("ply-header", PLY_HEADER_DAMAGE),
        ("ply-body", PLY_BODY_DAMAGE),
    ):
        for frame in (0, LATER_FRAME):
            names = [[frame_name(frame).split("/")[1]]]
            for how, expect in table.items():
                damage = {"kind": kind, "how": how, "frame": frame, "expect": expect, "names": names}
                damages.append(damage | ({"shows": PLY_SHOWS[how]} if expect == "either" else {}))
    for kind, table in (("file", FILE_DAMAGE), ("symlink", LINK_DAMAGE)):
        for how, (expect, names) in table.items():
            if how not in FRAME_DAMAGES:
                damages.append({"kind": kind, "how": how, "expect": expect, "names": [names]})
                continue
            for frame in (0, LATER_FRAME):
                words = [frame_name(frame).split("/")[1]]
                damages.append({"kind": kind, "how": how, "frame": frame, "expect": expect, "names": [words]})
    for name, values in ARGUMENTS.items():
        for label, (value, expect) in values.items():
            damages.append(
                {
                    "kind": "argument",
                    "name": name,
                    "value": value,
                    "label": label,
                    "expect": expect,
                    "names": [[name, ARGUMENT_LABELS[name]]],
                }
            )
    for how, expect in FOLDER_ARGUMENTS.items():
        damages.append(
            {"kind": "folder", "how": how, "expect": expect, "names": [["folder", "result", JSON_NAME]]}
        )
    return damages


def describe(damage: dict) -> str:
    """A short label of a damage for case ids: kind, what, and the frame."""
    what = damage.get("how")
    if "path" in damage:
        what = ".".join(damage["path"]) + ("=" + damage["label"] if "label" in damage else "")
    elif damage["kind"] == "argument":
        what = f"{damage['name']}={damage['label']}"
    frame = f"@{damage['frame']}" if "frame" in damage else ""
    return f"{damage['kind']}:{what}{frame}"


def targets(damage: dict) -> set[str]:
    """What a damage changes, so that two damages of one case never touch the same file."""
    kind, how = damage["kind"], damage.get("how", "")
    all_frames = {f"frame {index}" for index in range(FRAMES)}
    if kind.startswith("json-") or how.startswith("json"):
        return {"json"}
    if "frame" in damage:
        return {f"frame {damage['frame']}"}
    if how.startswith("frames-"):
        return {"frames"} | all_frames
    if how == "result-is-link":
        return {"json", "frames", "depth", "video", "extras"} | all_frames
    return {next((name for name in ("depth", "video") if name in how), "extras")}


def damaged_frames(damage: dict) -> set[int]:
    """The result frames whose PLY file a damage of the files breaks (the damaged copy outside the
    result that frames-to-damaged links to breaks frame 1)."""
    if damage["kind"].startswith("json-") or damage["kind"] in ("argument", "folder"):
        return set()
    if "frame" in damage:
        return {damage["frame"]}
    if damage["how"] == "frames-to-damaged":
        return {1}
    return (
        set(range(FRAMES))
        if damage["how"] in ("frames-removed", "frames-is-file", "frames-to-missing")
        else set()
    )


def can_happen_after_import(damage: dict) -> bool:
    """Damage to files that a saved .blend reads again when opened (not arguments, not a moved result)."""
    return damage["kind"] not in ("argument", "folder") and damage.get("how") != "result-is-link"


def make_case(name: str, damages: list[dict], route: str, when: str, reopen: bool) -> dict:
    """A case named `name` (its unique prefix, also its workspace's name) followed by what it does."""
    label = "+".join(describe(damage) for damage in damages)
    return {
        "id": f"{name}-{label}-{route}-{when}" + ("-reopen" if reopen else ""),
        "damages": damages,
        "route": route,
        "when": when,
        "reopen": reopen,
        "seed": int(name[1:]),
        "expect": "refuse" if when == "before" and any(_must_refuse(d, route) for d in damages) else "either",
    }


def _must_refuse(damage: dict, route: str) -> bool:
    """Whether a damage must be refused. Blender clamps an operator's numbers into the property's range
    and cuts its strings at a NUL byte before our code sees them, so those may import."""
    if route == "operator" and (damage["kind"] == "argument" or damage.get("how") == "nul-byte"):
        return False
    return damage["expect"] == "refuse"


def default_cases(seed: int = 19) -> list[dict]:
    """The default run: every damage except the field values once (those sampled), a later or the first
    frame at random, a third through the operator, a third reopened, and some damaged after the import."""
    rng = random.Random(seed)
    damages = catalogue()
    field_values = [d for d in damages if d["kind"] == "json-set"]
    by_frame: dict[str, list[dict]] = {}
    for damage in damages:
        if damage["kind"] != "json-set":
            by_frame.setdefault(describe(damage).split("@")[0], []).append(damage)
    chosen = [rng.choice(group) for group in by_frame.values()] + rng.sample(field_values, 60)
    after = [
        d for d in chosen if d["kind"].startswith(("ply-", "file", "symlink")) and can_happen_after_import(d)
    ]
    cases = []
    for damages_of_case, when in [([d], "before") for d in chosen] + [
        ([d], "after") for d in rng.sample(after, 24)
    ]:
        route = "operator" if rng.random() < 1 / 3 else "function"
        cases.append(
            make_case(f"d{len(cases):04d}", damages_of_case, route, when, reopen=rng.random() < 1 / 3)
        )
    return cases


def many_cases(count: int = 2000, seed: int = 1919) -> list[dict]:
    """The slow run: `count` cases drawn from every damage, one or two at a time, any route and timing."""
    rng = random.Random(seed)
    damages = catalogue()
    file_damages = [d for d in damages if d["kind"] not in ("argument", "folder")]
    cases = []
    while len(cases) < count:
        chosen = [rng.choice(damages)]
        if chosen[0]["kind"] not in ("argument", "folder") and rng.random() < 0.3:
            second = rng.choice(file_damages)
            if not targets(second) & targets(chosen[0]):
                chosen.append(second)
        when = "after" if all(map(can_happen_after_import, chosen)) and rng.random() < 0.25 else "before"
        route = rng.choice(("function", "operator"))
        cases.append(make_case(f"m{len(cases):04d}", chosen, route, when, reopen=rng.random() < 0.4))
    return cases

"""The fuzz cases of the importer: the catalogue of damages (tables in fuzz_expectations), seeded samples.

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
from fuzz_expectations import (
    ARGUMENT_LABELS,
    ARGUMENTS,
    CAMERA_DAMAGE,
    FIELDS,
    FILE,
    FILE_DAMAGE,
    FOLDER_ARGUMENTS,
    FRAME_DAMAGES,
    FRAME_NAMES_DAMAGE,
    FRAMES,
    JSON_TEXT_DAMAGE,
    LATER_FRAME,
    LINK_DAMAGE,
    OPTIONAL_FIELDS,
    PLY_BODY_DAMAGE,
    PLY_COUNT_DAMAGE,
    PLY_HEADER_DAMAGE,
    PLY_SHOWS,
    SOURCE_FRAMES_DAMAGE,
    VALUES,
)


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
    if kind.startswith("json-") or "json" in how:
        return {"json"}
    if "frame" in damage:
        return {f"frame {damage['frame']}"}
    if how.startswith("frames-") or how in ("extra-frame-file", "hidden-file"):
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
    plan = [([d], "before") for d in chosen] + [([d], "after") for d in rng.sample(after, 24)]
    cases = []
    for damages_of_case, when in plan:
        route = "operator" if rng.random() < 1 / 3 else "function"
        cases.append(
            make_case(f"d{len(cases):04d}", damages_of_case, route, when, reopen=rng.random() < 1 / 3)
        )
    return cases


def many_cases(count: int = 2000, seed: int = 1919) -> list[dict]:
    """The slow run: `count` cases drawn from every damage (a kind at random, then one of its damages), one
    or two at a time, any route; a quarter of those that break frame files damaged after the import."""
    rng = random.Random(seed)
    by_kind: dict[str, list[dict]] = {}
    for damage in catalogue():
        by_kind.setdefault(damage["kind"], []).append(damage)
    file_kinds = [kind for kind in by_kind if kind not in ("argument", "folder")]
    cases = []
    while len(cases) < count:
        chosen = [rng.choice(by_kind[rng.choice(list(by_kind))])]
        if chosen[0]["kind"] in file_kinds and rng.random() < 0.3:
            second = rng.choice(by_kind[rng.choice(file_kinds)])
            if not targets(second) & targets(chosen[0]):
                chosen.append(second)
        breaks_frames = any(damaged_frames(d) for d in chosen) and all(map(can_happen_after_import, chosen))
        when = "after" if breaks_frames and rng.random() < 0.25 else "before"
        route = rng.choice(("function", "operator"))
        cases.append(make_case(f"m{len(cases):04d}", chosen, route, when, reopen=rng.random() < 0.4))
    return cases

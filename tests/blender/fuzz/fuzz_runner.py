"""Runs fuzz cases through the importer in this process (real bpy) and writes one JSON line per case.

Usage: python fuzz_runner.py import|reopen CASES.json OUTCOMES.jsonl.
Phase "import", for each case and storage mode: a factory-fresh file, an import through geo4d's Python
function or its operator, then every frame of the result and frames outside it are set and evaluated (a
streamed import reads its PLY files only then); some cases save the .blend and open it again at once.
A case that damages its result after the import saves the .blend for phase "reopen", which a fresh
process runs once the parent test has damaged the result: Blender's Import PLY node caches what it read
per path, so only a process that never read those files sees what a user opening the .blend would.
A line records each outcome ("imported", "refused" with its message, "error" with the traceback,
"opened") and every problem found: a scene that does not reproduce the files, non-finite points, a
damaged file read, data-blocks left behind by a refusal. The parent test (test_fuzz_import) judges the
lines, the exit status and the user's files.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
import traceback
from pathlib import Path

import bpy
import numpy as np

# fuzz_cases and fuzz_damage lie beside this script, whose folder is first on sys.path.
from fuzz_cases import damaged_frames
from fuzz_damage import RESULT, frame_name

import geo4d
from geo4d.blender_compat import read_evaluated_point_cloud, streamed_points_supported
from geo4d.core.errors import Geo4DError
from geo4d.import_options import ImportOptions
from geo4d.owned_data import ROLE_TAG
from geo4d.scene_builder import import_result

# Every kind of data-block an import could create or leave behind.
BLOCK_KINDS = (
    "objects",
    "meshes",
    "pointclouds",
    "cameras",
    "collections",
    "actions",
    "node_groups",
    "materials",
    "movieclips",
    "images",
    "texts",
)
# Address space of a runner: a PLY header asking for 2**63 points must fail, not swap the machine.
MEMORY_LIMIT = 8 << 30
# OpenCV camera axes to Blender's (x right, y up, looking down -z).
OPENCV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])
MAX_FRAME = 1048574
# The undamaged result's frame points [N, 3]: by the SHA-256 of their file, and by the file's name.
BaseFrames = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
# Frames set after the result's own: before it, just after it, further on.
OUTSIDE_OFFSETS = (-1, 0, 2)


def reset() -> None:
    """The factory startup file, empty (the add-on stays registered, as in a running Blender)."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)


def snapshot() -> dict:
    """Names of every data-block and the scene settings an import changes: a refusal must keep them."""
    scene = bpy.context.scene
    render = scene.render
    state = {kind: sorted(block.name for block in getattr(bpy.data, kind)) for kind in BLOCK_KINDS}
    state["scene"] = [
        scene.frame_start,
        scene.frame_end,
        render.fps,
        render.fps_base,
        render.resolution_x,
        render.resolution_y,
        scene.camera.name if scene.camera else None,
        scene.view_settings.view_transform,
    ]
    return state


def evaluated_positions(points: bpy.types.Object) -> np.ndarray:
    """World positions [N, 3] of the evaluated point cloud at the current frame."""
    depsgraph = bpy.context.evaluated_depsgraph_get()

    def positions(cloud: bpy.types.PointCloud) -> np.ndarray:
        local = np.empty(len(cloud.points) * 3, dtype=np.float32)
        cloud.attributes["position"].data.foreach_get("vector", local)
        return local.reshape(-1, 3).astype(np.float64)

    local = read_evaluated_point_cloud(points, depsgraph, positions)
    if local is None:
        return np.zeros((0, 3))
    matrix = np.array(points.evaluated_get(depsgraph).matrix_world)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def our_objects() -> tuple[list, list]:
    objects = list(bpy.data.objects)
    return (
        [obj for obj in objects if obj.get(ROLE_TAG) == "camera"],
        [obj for obj in objects if obj.get(ROLE_TAG) == "points"],
    )


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SceneCheck:
    """Whether an import reproduces its result folder: frames, fps, size, every camera pose and point."""

    def __init__(self, case: dict, base: BaseFrames, frame_start: int) -> None:
        self.result = Path(case["workspace"]) / RESULT
        self.damages = case["damages"]
        self.base_frames, self.base_by_name = base
        self.frame_start = frame_start
        self.problems: list[str] = []

    def run(self) -> dict[int, int]:
        """The checks on the scene just imported; returns the point count of each timeline frame set."""
        try:
            description = json.loads((self.result / "reconstruction.json").read_bytes())
            frames = description["frames"]
            matrices = np.array(description["camera_to_world"], dtype=np.float64)
        except (OSError, ValueError, TypeError, KeyError) as error:
            self.problems.append(f"imported, but reconstruction.json is unreadable: {error!r}")
            return {}
        first, count = self.frame_start, len(frames)
        scene = bpy.context.scene
        if (scene.frame_start, scene.frame_end) != (first, first + count - 1):
            self.problems.append(
                f"scene frames {scene.frame_start}..{scene.frame_end} for {count} frames at {first}"
            )
        self._check_settings(description, scene)
        cameras, clouds = our_objects()
        if len(cameras) != 1 or len(clouds) != 1:
            self.problems.append(f"found {len(cameras)} cameras and {len(clouds)} point clouds of the import")
            return {}
        camera, points = cameras[0], clouds[0]
        if camera.name not in scene.objects or points.name not in scene.objects:
            self.problems.append("the imported objects are not in the scene")
        if matrices.shape != (count, 4, 4):
            self.problems.append(f"imported camera_to_world of shape {matrices.shape} for {count} frames")
            return {}
        world = np.array(points.matrix_world)
        counts = {}
        for index in range(count):
            scene.frame_set(first + index)
            self._check_camera(index, matrices[index], world, camera)
            counts[first + index] = self._check_points(index, frames[index], world, points)
        for offset in OUTSIDE_OFFSETS:
            frame = first - 1 if offset < 0 else first + count + offset
            if 0 <= frame <= MAX_FRAME:
                scene.frame_set(frame)
                counts[frame] = len(evaluated_positions(points))
                if counts[frame]:
                    self.problems.append(f"{counts[frame]} points at frame {frame}, outside the result")
        return counts

    def _check_settings(self, description: dict, scene: bpy.types.Scene) -> None:
        fps, render = description.get("fps"), scene.render
        if not is_number(fps) or fps <= 0 or abs(render.fps / render.fps_base - fps) > 1e-6 * fps:
            self.problems.append(f"scene fps {render.fps}/{render.fps_base} for fps {fps!r} in the file")
        size = (description.get("width"), description.get("height"))
        if not all(type(side) is int for side in size) or size != (render.resolution_x, render.resolution_y):
            self.problems.append(
                f"scene size {render.resolution_x}x{render.resolution_y} for {size!r} in the file"
            )

    def _check_camera(
        self, index: int, matrix: np.ndarray, world: np.ndarray, camera: bpy.types.Object
    ) -> None:
        rotation = matrix[:3, :3]
        rigid = (
            np.isfinite(matrix).all()
            and np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-5)
            and np.linalg.det(rotation) > 0
            and np.allclose(matrix[3], [0, 0, 0, 1])
        )
        if not rigid:
            self.problems.append(
                f"imported camera_to_world[{index}], which is not a rigid motion: {matrix.tolist()}"
            )
            return
        expected = world @ matrix @ OPENCV_TO_BLENDER
        shown = np.array(camera.matrix_world)
        if not np.allclose(shown, expected, atol=1e-4 * (1 + np.abs(expected).max())):
            self.problems.append(
                f"camera at result frame {index} is {shown.tolist()}, the file says {expected.tolist()}"
            )

    def _check_points(self, index: int, name: object, world: np.ndarray, points: bpy.types.Object) -> int:
        """The evaluated points of result frame `index` against the file the description lists for it."""
        shown = evaluated_positions(points)
        if not np.isfinite(shown).all():
            self.problems.append(f"non-finite point positions at result frame {index}")
        path = self.result / name if isinstance(name, str) and "\0" not in name else None
        if path is None or not path.is_file():
            return len(shown)
        expected, count_only = self.base_frames.get(hashlib.sha256(path.read_bytes()).hexdigest()), False
        if expected is None:
            expected, count_only = self._damaged_frame_points(path)
        if expected is None:
            return len(shown)  # damaged beyond reading: such a file must have been refused
        expected = expected @ world[:3, :3].T + world[:3, 3]
        if shown.shape != expected.shape or not (count_only or np.allclose(shown, expected, atol=1e-4)):
            self.problems.append(
                f"result frame {index} shows {len(shown)} points; its file {name} holds {len(expected)}"
            )
        return len(shown)

    def _damaged_frame_points(self, path: Path) -> tuple[np.ndarray | None, bool]:
        """The points [N, 3] that a PLY damaged in a readable way holds (from the undamaged file it was
        made of), and whether only their number can be compared."""
        for damage in self.damages:
            if "shows" in damage and path.samefile(self.result / frame_name(damage["frame"])):
                original = self.base_by_name[frame_name(damage["frame"])]
                shows = {
                    "same": original,
                    "same-count": original,
                    "all-but-last": original[:-1],
                    "none": original[:0],
                    "swapped-xz": original[:, ::-1],
                }
                return shows[damage["shows"]], damage["shows"] == "same-count"
        return None, False


def import_arguments(case: dict, mode: str) -> dict:
    """Keyword arguments of the import: the options (possibly damaged) and the folder as given."""
    workspace = Path(case["workspace"])
    options = {"frame_start": 1, "storage": mode, "point_size": 1.0, "point_radius": 0.0}
    folder = str(workspace / RESULT)
    for damage in case["damages"]:
        if damage["kind"] == "argument":
            options[damage["name"]] = damage["value"]
        elif damage["kind"] == "folder":
            folder = {
                "missing": str(workspace / "no such result"),
                "a-file": str(workspace / "notes.txt"),
                "empty": "",
                "nul-byte": folder + "\0",
                "name-too-long": str(workspace / ("a" * 300)),
                "the-json-file": str(workspace / RESULT / "reconstruction.json"),
                "relative": RESULT,
            }[damage["how"]]
    return {"folder": folder, **options}


def import_once(case: dict, arguments: dict) -> tuple[str, str, int]:
    """Import; returns (outcome, message, frame start used). Raises what no refusal should be."""
    options = dict(arguments)
    folder = options.pop("folder")
    if case["route"] == "function":
        try:
            import_options = ImportOptions(**options)
        except ValueError as error:
            return "refused", str(error), 0
        import_result(folder, import_options)
        return "imported", "", import_options.frame_start
    chosen = {"filepath": folder} if folder.endswith(".json") else {"directory": folder}
    try:
        outcome = bpy.ops.geo4d.import_result(**chosen, **options)
    except RuntimeError as error:
        return "refused", str(error).removeprefix("Error: ").rstrip("\n"), 0
    except (TypeError, ValueError, OverflowError) as error:
        if str(error).startswith("Converting py args to operator properties"):
            return "refused", str(error), 0  # Blender's own check of the property's type and range
        raise
    if outcome != {"FINISHED"}:
        return "silently-cancelled", str(outcome), 0
    return "imported", "", bpy.context.scene.frame_start


def run_mode(case: dict, mode: str, base_frames: BaseFrames) -> dict:
    """One import of a case and its checks; the saved .blend reopened here, or kept for the reopen phase
    when the case damages the result after the import."""
    reset()
    before = snapshot()
    arguments = import_arguments(case, mode)
    record = {"mode": mode, "problems": []}
    try:
        record["outcome"], record["message"], frame_start = import_once(case, arguments)
    except Geo4DError as error:
        record["outcome"], record["message"] = "refused", str(error)
    except Exception as error:  # any other exception is a finding, reported with its traceback
        record["outcome"], record["message"] = "error", f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
    if record["outcome"] != "imported":
        after = snapshot()
        changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
        if changed:
            record["problems"].append(f"a failed import changed the file: {changed}")
        return record
    check = SceneCheck(case, base_frames, frame_start)
    try:
        counts = check.run()
    except Exception as error:  # the import accepted what the checks cannot even read
        check.problems.append(f"imported a result the checks cannot read: {error!r}")
        counts = {}
    record["problems"] += check.problems
    if case["reopen"] or case["when"] == "after":
        bpy.ops.wm.save_as_mainfile(filepath=case["blend"])
        record["saved"] = {"counts": counts, "frame_start": frame_start}
    if case["reopen"] and case["when"] == "before":
        record["problems"] += reopen(case, record["saved"])
    return record


def reopen(case: dict, saved: dict) -> list[str]:
    """Open the case's saved .blend in a fresh file and set every frame that was set after the import."""
    try:
        return _reopen(case, saved)
    except RuntimeError as error:  # Blender's own refusal to open the file
        return [f"the saved .blend does not open: {error}"]


def _reopen(case: dict, saved: dict) -> list[str]:
    """The problems of the reopened file.

    Opened after damage that an import must refuse, a damaged frame must show nothing: its file must
    not reach Blender's PLY reader (which turns an infinite coordinate into 0, or crashes on a bad count).
    """
    unreadable = set()
    # Where Blender cannot stream, the import packed the points into the .blend: no file is read on opening.
    if case["when"] == "after" and streamed_points_supported():
        unreadable = set().union(*(damaged_frames(d) for d in case["damages"] if d["expect"] == "refuse"))
    reset()
    bpy.ops.wm.open_mainfile(filepath=case["blend"])
    cameras, clouds = our_objects()
    if len(cameras) != 1 or len(clouds) != 1:
        return [f"the reopened file holds {len(cameras)} cameras and {len(clouds)} point clouds"]
    problems = []
    for frame, count in sorted((int(frame), count) for frame, count in saved["counts"].items()):
        bpy.context.scene.frame_set(frame)
        shown = evaluated_positions(clouds[0])
        if not np.isfinite(shown).all() or not np.isfinite(np.array(cameras[0].matrix_world)).all():
            problems.append(f"non-finite points or camera at frame {frame} of the reopened file")
        if case["when"] == "before" and len(shown) != count:
            problems.append(f"the reopened file shows {len(shown)} points at frame {frame}, not {count}")
        if frame - saved["frame_start"] in unreadable and len(shown):
            problems.append(
                f"the reopened file read the damaged frame file: {len(shown)} points at frame {frame}"
            )
    return problems


def modes(case: dict) -> tuple[str, ...]:
    """Both storage modes; one run when the storage itself is the damaged argument or after-import damage."""
    if any(d["kind"] == "argument" and d["name"] == "storage" for d in case["damages"]):
        return ("given",)
    return ("STREAMED",) if case["when"] == "after" else ("STREAMED", "PACKED")


def read_base_frames(base: Path) -> BaseFrames:
    """The undamaged frames' points [N, 3] by the SHA-256 of their files and by their names (parsed
    here, not by geo4d)."""
    by_hash, by_name = {}, {}
    record = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3), ("confidence", "<f4")])
    for path in sorted((base / "frames").glob("*.ply")):
        data = path.read_bytes()
        end = data.index(b"end_header\n") + len(b"end_header\n")
        points = np.frombuffer(data[end:], dtype=record)["xyz"].astype(np.float64)
        by_hash[hashlib.sha256(data).hexdigest()] = by_name[frame_name(int(path.stem))] = points
    return by_hash, by_name


def run_case(case: dict, phase: str, base_frames: BaseFrames) -> list[dict]:
    """The records of one case: one per import (phase "import"), or the reopened file's (phase "reopen")."""
    if phase == "reopen":
        return [{"mode": "REOPENED", "outcome": "opened", "problems": reopen(case, case["saved"])}]
    return [run_mode(case, mode, base_frames) for mode in modes(case)]


def main(phase: str, cases_path: str, outcomes_path: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    plan = json.loads(Path(cases_path).read_text())
    base_frames = read_base_frames(Path(plan["base"]))
    geo4d.register()
    with open(outcomes_path, "a") as outcomes:
        for case in plan["cases"]:
            outcomes.write(json.dumps({"id": case["id"], "started": True}) + "\n")
            outcomes.flush()
            runs = run_case(case, phase, base_frames)
            outcomes.write(json.dumps({"id": case["id"], "runs": runs}) + "\n")
            outcomes.flush()
    reset()
    # Blender disables its add-ons on quit; the bpy module of 4.2 crashes on exit while classes are registered.
    geo4d.unregister()


if __name__ == "__main__":
    main(*sys.argv[1:4])

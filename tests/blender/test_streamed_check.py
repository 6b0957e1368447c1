"""Opening a .blend whose streamed frame files were damaged since: the cloud is turned off, Blender lives.

The .blend is opened in a separate process that changes to every frame and evaluates the scene, so a
crash of Blender's PLY reader fails the test instead of killing pytest.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from synthetic_results import write_result

import geo4d
from geo4d.blender_compat import streamed_points_supported
from geo4d.core.ply import read_layout
from geo4d.core.result import frame_file_name
from geo4d.import_options import ImportOptions
from geo4d.owned_data import PROBLEM_TAG
from geo4d.point_cloud_builder import FRAMES_MODIFIER
from geo4d.scene_builder import import_result
from geo4d.streamed_check import check_streamed_clouds_on_load

FRAMES = 4
# Blender 4.2 imports streamed results packed: it has no streamed clouds to check.
STREAMED_ONLY = pytest.mark.skipif(
    not streamed_points_supported(), reason="this Blender cannot stream points"
)
# Opens the .blend with the add-on registered, evaluates every frame, reports what each cloud showed.
OPEN_AND_PLAY = """
import json, sys
import bpy, geo4d
geo4d.register()
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
shown = {}
for frame in range(scene.frame_start, scene.frame_end + 1):
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in scene.objects:
        if obj.get("geo4d_role") == "points":
            geometry = obj.evaluated_get(depsgraph).evaluated_geometry()  # owns the cloud: keep it
            cloud = geometry.pointcloud
            shown.setdefault(obj.name, []).append(0 if cloud is None else len(cloud.points))
clouds = {
    obj.name: [obj.modifiers[sys.argv[2]].show_viewport, obj.modifiers[sys.argv[2]].show_render,
               obj.get("geo4d_problem"), shown[obj.name]]
    for obj in scene.objects if obj.get("geo4d_role") == "points"
}
if len(sys.argv) > 3:
    bpy.ops.wm.save_mainfile()
print("CLOUDS " + json.dumps(clouds))
geo4d.unregister()  # as Blender does on quit; bpy 4.2 crashes on exit while classes are registered
"""


def open_and_play(blend: Path, save: bool = False) -> dict:
    """{cloud name: [show_viewport, show_render, problem, points shown at each frame]} after opening."""
    arguments = [
        sys.executable,
        "-c",
        OPEN_AND_PLAY,
        str(blend),
        FRAMES_MODIFIER,
        *(["save"] if save else []),
    ]
    done = subprocess.run(arguments, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"Blender exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("CLOUDS ")]
    return json.loads(line.removeprefix("CLOUDS "))


def randomise_points(path: Path) -> None:
    """Random bytes in place of the points, under the file's own (whole) header."""
    offset = read_layout(path).body_offset
    data = path.read_bytes()
    path.write_bytes(data[:offset] + np.random.default_rng(0).bytes(len(data) - offset))


@STREAMED_ONLY
def test_a_damaged_frame_turns_its_cloud_off_on_opening_until_it_is_whole(scene, tmp_path):
    counts = {}
    for name in ("bad", "noisy"):
        write_result(tmp_path / name, 48, 32, frames=FRAMES)
        counts[name] = [read_layout(tmp_path / name / frame_file_name(k)).count for k in range(FRAMES)]
        import_result(tmp_path / name, ImportOptions(storage="STREAMED"))
    # Saved showing frame 2: opening evaluates it at once, before any frame change.
    scene.frame_set(scene.frame_start + 2)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bad = tmp_path / "bad" / frame_file_name(2)
    whole = bad.read_bytes()
    bad.write_bytes(re.sub(rb"element vertex \d+", b"element vertex -1", whole, count=1))
    randomise_points(tmp_path / "noisy" / frame_file_name(1))

    clouds = open_and_play(blend, save=True)
    viewport, render, problem, shown = clouds["Geo4D bad points"]
    assert (viewport, render, shown) == (False, False, [0] * FRAMES)
    assert problem == (
        f"turned off on opening the file: {bad} is not a valid Geo4D point file: the point count in "
        "'element vertex -1' is not a whole number from 0 to 50000000. Reconstruct the result again."
    )
    # Random points under a whole header include non-finite coordinates: refused as the importer would.
    viewport, render, problem, shown = clouds["Geo4D noisy points"]
    assert (viewport, render, shown) == (False, False, [0] * FRAMES)
    assert "non-finite coordinates" in problem and frame_file_name(1) in problem

    bad.write_bytes(whole)
    assert open_and_play(blend)["Geo4D bad points"] == [True, True, None, counts["bad"]]


@STREAMED_ONLY
def test_a_moved_result_folder_turns_the_cloud_off(scene, tmp_path):
    write_result(tmp_path / "room", 48, 32, frames=2)
    import_result(tmp_path / "room", ImportOptions(storage="STREAMED"))
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    shutil.move(tmp_path / "room", tmp_path / "moved")
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    (points,) = [obj for obj in bpy.data.objects if PROBLEM_TAG in obj]
    assert not points.modifiers[FRAMES_MODIFIER].show_viewport
    assert f"Cannot read point file {tmp_path / 'room' / frame_file_name(0)}" in points[PROBLEM_TAG]


def test_unregister_removes_the_handler(scene):
    assert check_streamed_clouds_on_load in bpy.app.handlers.load_post
    geo4d.unregister()
    assert check_streamed_clouds_on_load not in bpy.app.handlers.load_post
    geo4d.register()

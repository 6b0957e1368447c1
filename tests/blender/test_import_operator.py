"""The import operator, its File > Import entry and the `python -m geo4d import` command, with real files."""

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import bpy
import pytest
from inspect_scene import check_projection, data_counts, evaluated_points, our_object

import geo4d
from geo4d import save_paths
from geo4d.core.result import Reconstruction
from geo4d.ui.menus import draw_import_entry


@pytest.fixture
def registered(empty_scene):
    geo4d.register()
    yield
    geo4d.unregister()


def test_operator_imports_from_python_with_explicit_parameters(registered, room_result):
    folder, truth = room_result
    result = bpy.ops.geo4d.import_result(
        directory=str(folder), frame_start=5, storage="PACKED", point_size=3.0
    )
    assert result == {"FINISHED"}
    points = our_object("points")
    bpy.context.scene.frame_set(5 + 2)
    assert len(evaluated_points(points)[0]) == truth.valid_mask()[2].sum()
    assert len(points.data.vertices) == truth.valid_mask().sum()
    assert bpy.context.scene.frame_end == 5 + truth.num_frames - 1


def test_operator_accepts_the_chosen_json_file(registered, room_result):
    folder, _ = room_result
    assert bpy.ops.geo4d.import_result(filepath=str(folder / "reconstruction.json")) == {"FINISHED"}
    assert our_object("camera").get("geo4d_result") == str(folder.resolve())


def test_operator_reports_an_error_and_builds_nothing_for_a_bad_result(registered, tmp_path):
    counts = data_counts()
    with pytest.raises(RuntimeError, match="not a Geo4D result"):
        bpy.ops.geo4d.import_result(directory=str(tmp_path))
    assert data_counts() == counts


def test_operator_refuses_a_zero_camera_matrix_naming_the_field(registered, room_result):
    folder, _ = room_result
    path = folder / "reconstruction.json"
    description = json.loads(path.read_text())
    description["camera_to_world"][1] = [[0.0] * 4 for _ in range(4)]
    path.write_text(json.dumps(description))
    counts = data_counts()
    with pytest.raises(RuntimeError, match=r"reconstruction.json: camera_to_world\[1\] is not a rotation"):
        bpy.ops.geo4d.import_result(directory=str(folder))
    assert data_counts() == counts


def test_register_adds_the_menu_entry_and_unregister_removes_everything(empty_scene):
    geo4d.register()
    assert draw_import_entry in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    assert hasattr(bpy.types, "GEO4D_OT_import_result")
    assert save_paths._on_save in bpy.app.handlers.save_pre
    geo4d.unregister()
    assert save_paths._on_save not in bpy.app.handlers.save_pre
    assert draw_import_entry not in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    assert not hasattr(bpy.types, "GEO4D_OT_import_result")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geo4d", *args], capture_output=True, text=True, timeout=120)


def test_cli_writes_a_blend_whose_streamed_paths_follow_the_files(tmp_path, room_result, empty_scene):
    folder, truth = room_result
    output = tmp_path / "scenes" / "room.blend"
    output.parent.mkdir()
    completed = run_cli("import", str(folder), "-o", str(output), "--frame-start", "3")
    assert completed.returncode == 0, completed.stderr
    with opened_elsewhere(tmp_path, Path("scenes") / "room.blend"):
        bpy.context.scene.frame_set(3)
        assert len(evaluated_points(our_object("points"))[0]) == truth.valid_mask()[0].sum()
        assert our_object("camera").data.background_images[0].clip.filepath == "//../room/video.mp4"


def test_saving_after_an_import_stores_its_paths_relative(registered, tmp_path, room_result):
    folder, truth = room_result
    assert bpy.ops.geo4d.import_result(directory=str(folder)) == {"FINISHED"}
    (tmp_path / "scenes").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scenes" / "room.blend"))
    with opened_elsewhere(tmp_path, Path("scenes") / "room.blend"):
        bpy.context.scene.frame_set(2)
        assert len(evaluated_points(our_object("points"))[0]) == truth.valid_mask()[1].sum()
        assert our_object("camera").data.background_images[0].clip.filepath == "//../room/video.mp4"


@contextlib.contextmanager
def opened_elsewhere(tree: Path, blend: Path):
    """Move the folder `tree` (results and .blend together) elsewhere, open tree/blend there, move it back."""
    moved = tree.parent / (tree.name + "-moved")
    shutil.move(tree, moved)
    try:
        bpy.ops.wm.open_mainfile(filepath=str(moved / blend))
        yield
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        shutil.move(moved, tree)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{tmp}/absent", "-o", "{tmp}/out.blend"], "is not a folder"),
        (["{result}", "-o", "{tmp}/no-such-folder/out.blend"], "does not exist"),
        (["{result}", "-o", "{tmp}/out.txt"], "does not end in .blend"),
    ],
    ids=["missing-result", "unwritable-output", "not-a-blend"],
)
def test_cli_fails_with_a_message_and_writes_nothing(tmp_path, room_result, arguments, message):
    folder, _ = room_result
    completed = run_cli("import", *(a.format(tmp=tmp_path, result=folder) for a in arguments))
    assert completed.returncode == 1
    assert message in completed.stderr
    assert not list(tmp_path.glob("*.blend")) and not (tmp_path / "no-such-folder").exists()


def test_cli_help_lists_import(tmp_path):
    completed = run_cli("import", "--help")
    assert completed.returncode == 0 and "--storage" in completed.stdout


def synth_then_import(folder: Path, *synth_options: str) -> Reconstruction:
    """The issue's acceptance commands: `geo4d synth -o DIR ...` then `geo4d import DIR -o DIR.blend`; the
    .blend is opened and its ground truth returned."""
    completed = run_cli("synth", "-o", str(folder), *synth_options)
    assert completed.returncode == 0, completed.stderr
    blend = folder.with_suffix(".blend")
    completed = run_cli("import", str(folder), "-o", str(blend))
    assert completed.returncode == 0, completed.stderr
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    return Reconstruction.load(folder)


def test_cli_synth_then_import_passes_the_projection_check(empty_scene, tmp_path):
    truth = synth_then_import(tmp_path / "s", "--frames", "3", "--size", "40x24", "--seed", "5")
    check_projection(truth, frame_start=1)


@pytest.mark.slow
def test_cli_synth_then_import_at_full_size_passes_the_projection_check(empty_scene, tmp_path):
    check_projection(synth_then_import(tmp_path / "s", "--frames", "48"), frame_start=1)

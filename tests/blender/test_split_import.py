"""Split results in Blender: a static `Set` beside an animated `Moving` cloud, the choice, and bad input."""

from pathlib import Path

import bpy
import numpy as np
import pytest
from inspect_scene import data_counts, evaluated_points
from synthetic_results import write_result

from geo4d.blender_commands import import_result as import_command
from geo4d.core.cli import main
from geo4d.core.errors import Geo4DError
from geo4d.core.result import read_frame_points, read_static_points
from geo4d.import_options import ImportOptions
from geo4d.scene_builder import import_result


@pytest.fixture
def split_result(tmp_path: Path):
    """A 6-frame 48x32 synthetic result with two extra movers, saved split by its true motion masks."""
    folder = tmp_path / "crowd"
    truth = write_result(folder, 48, 32, frames=6, seed=3)
    truth.motion.score[:, :, 20:30] = 1.0  # a band counted as moving, besides the scene's own movers
    truth.save(folder, split=True)
    return folder, truth


@pytest.mark.parametrize("storage", ["STREAMED", "PACKED"])
def test_split_import_builds_set_and_moving_with_only_moving_points_per_frame(
    empty_scene, split_result, storage
):
    folder, truth = split_result
    imported = import_result(folder, ImportOptions(storage=storage, points="SPLIT", frame_start=5))
    names = {obj.name for obj in imported.collection.objects}
    assert names == {"Geo4D crowd camera", "Geo4D crowd Set", "Geo4D crowd Moving"}
    assert imported.static.name == "Geo4D crowd Set" and imported.points.name == "Geo4D crowd Moving"
    static = read_static_points(folder)
    moving = truth.motion.moving() & truth.valid_mask()
    scene = bpy.context.scene
    for index in range(truth.num_frames):
        scene.frame_set(5 + index)
        world, _, _ = evaluated_points(imported.points)
        assert len(world) == int(moving[index].sum()) == len(read_frame_points(folder, index)) > 0
        assert len(evaluated_points(imported.static)[0]) == len(static) > 0  # the set shows at every frame
    scene.frame_set(5 + truth.num_frames)  # past the clip: no moving points, the set stays
    assert len(evaluated_points(imported.points)[0]) == 0
    assert len(evaluated_points(imported.static)[0]) == len(static)


def test_set_points_sit_where_static_ply_puts_them(empty_scene, split_result):
    folder, truth = split_result
    imported = import_result(folder, ImportOptions(points="SPLIT"))
    world, _, _ = evaluated_points(imported.static)
    static = read_static_points(folder)
    expected = np.stack([static["x"], static["y"], static["z"]], axis=1).astype(np.float64)
    matrix = np.array(imported.static.matrix_world)
    expected = expected @ matrix[:3, :3].T + matrix[:3, 3]
    np.testing.assert_allclose(np.sort(world, axis=0), np.sort(expected, axis=0), atol=1e-4)


def test_reimport_replaces_the_split_objects(empty_scene, split_result):
    folder, _ = split_result
    import_result(folder, ImportOptions(points="SPLIT"))
    counts = data_counts()
    import_result(folder, ImportOptions(points="SPLIT", storage="PACKED"))
    assert data_counts() == counts


def test_the_choice_and_the_result_disagreeing_is_said(empty_scene, split_result, room_result):
    folder, _ = split_result
    full = import_result(folder, ImportOptions(points="FULL"))
    assert full.static is None and any("Points: Split" in warning for warning in full.warnings)
    room, _ = room_result
    plain = import_result(room, ImportOptions(points="SPLIT"))
    assert plain.static is None and plain.points.name == "Geo4D room points"
    assert any("has no static cloud" in warning for warning in plain.warnings)


def test_a_damaged_static_cloud_is_refused_with_one_line_and_nothing_built(empty_scene, split_result):
    folder, _ = split_result
    static = folder / "static.ply"
    static.write_bytes(static.read_bytes()[:-7])
    counts = data_counts()
    with pytest.raises(Geo4DError) as raised:
        import_result(folder, ImportOptions(points="SPLIT"))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{static} is not a valid Geo4D point file")
    assert data_counts() == counts


def test_the_import_operator_chooses_split(scene, split_result):
    folder, _ = split_result
    done = bpy.ops.geo4d.import_result(filepath=str(folder / "reconstruction.json"), points="SPLIT")
    assert done == {"FINISHED"}
    assert {"Geo4D crowd Set", "Geo4D crowd Moving"} <= set(bpy.data.objects.keys())


def test_the_import_command_chooses_split_and_prints_the_warnings(
    empty_scene, split_result, tmp_path, capsys
):
    folder, _ = split_result
    split_blend, full_blend = tmp_path / "split.blend", tmp_path / "full.blend"
    assert main([import_command], ["import", str(folder), "-o", str(split_blend), "--points", "split"]) == 0
    captured = capsys.readouterr()
    assert "set 'Geo4D crowd Set'" in captured.out and "Points: Split" not in captured.err
    assert main([import_command], ["import", str(folder), "-o", str(full_blend)]) == 0
    warnings = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("geo4d: warning: ") for line in warnings)
    assert any("Points: Split" in line for line in warnings)  # a split result imported whole
    bpy.ops.wm.open_mainfile(filepath=str(split_blend))
    assert {"Geo4D crowd Set", "Geo4D crowd Moving"} <= set(bpy.data.objects.keys())
    bpy.ops.wm.read_factory_settings(use_empty=True)

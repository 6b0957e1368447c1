"""Importing a result into Blender: exact projection through the keyed camera, storage modes, replacement."""

import json
import re
import shutil
from pathlib import Path

import bpy
import numpy as np
import pytest
from inspect_scene import check_projection, data_counts
from synthetic_results import write_result

from geo4d.blender_compat import assigned_fcurves
from geo4d.core.errors import Geo4DError
from geo4d.core.result import frame_file_name
from geo4d.import_options import ImportOptions
from geo4d.owned_data import RESULT_TAG
from geo4d.scene_builder import import_result


@pytest.mark.parametrize("storage", ["STREAMED", "PACKED"])
@pytest.mark.parametrize(
    ("width", "height", "crop", "frame_start"),
    [(48, 32, (0, 0), 1), (32, 48, (1, 3), 7)],
    ids=["landscape-centred", "portrait-off-centre"],
)
def test_points_land_on_their_pixel_centres_after_save_and_reopen(
    empty_scene,
    tmp_path: Path,
    storage: str,
    width: int,
    height: int,
    crop: tuple[int, int],
    frame_start: int,
):
    folder = tmp_path / "result"
    truth = write_result(folder, width, height, seed=width, crop=crop)
    options = ImportOptions(frame_start=frame_start, storage=storage, point_size=2.0)
    import_result(folder, options)
    blend = tmp_path / "scenes" / "scene.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))

    check_projection(truth, frame_start, point_size=2.0)


def test_first_camera_sits_at_origin_looking_along_y_with_z_up(empty_scene, room_result):
    folder, _ = room_result
    camera = import_result(folder).camera
    bpy.context.scene.frame_set(1)
    matrix = np.array(camera.matrix_world)
    np.testing.assert_allclose(matrix[:3, 3], 0, atol=1e-6)
    np.testing.assert_allclose(matrix[:3, :3] @ [0, 0, -1], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(matrix[:3, :3] @ [0, 1, 0], [0, 0, 1], atol=1e-6)


def test_camera_has_one_key_per_frame_and_the_footage_as_background(empty_scene, room_result):
    folder, truth = room_result
    camera = import_result(folder, ImportOptions(frame_start=10)).camera
    curves = assigned_fcurves(camera)
    keys = {(curve.data_path, curve.array_index): len(curve.keyframe_points) for curve in curves}
    assert keys == {("location", i): truth.num_frames for i in range(3)} | {
        ("rotation_quaternion", i): truth.num_frames for i in range(4)
    }
    assert {int(point.co[0]) for point in curves[0].keyframe_points} == set(range(10, 10 + truth.num_frames))
    (background,) = camera.data.background_images
    assert Path(bpy.path.abspath(background.clip.filepath)) == (folder / "video.mp4").resolve()
    assert background.clip.frame_start == 10
    assert bpy.context.scene.render.fps == 24


def test_reimport_replaces_ours_and_leaves_others_alone(empty_scene, room_result):
    folder, _ = room_result
    theirs = bpy.data.objects.new("Geo4D room camera", None)
    bpy.context.scene.collection.objects.link(theirs)
    import_result(folder)
    counts = data_counts()
    result = import_result(folder, ImportOptions(storage="PACKED"))
    assert data_counts() == counts
    assert theirs.name == "Geo4D room camera" and RESULT_TAG not in theirs
    assert result.points.name == "Geo4D room points"
    assert result.collection.name == "Geo4D room"
    assert result.points.modifiers[0].node_group.name == "Geo4D room points frames"


def damage_missing_frame(folder: Path) -> None:
    (folder / frame_file_name(2)).unlink()


def damage_truncated_frame(folder: Path) -> None:
    path = folder / frame_file_name(3)
    path.write_bytes(path.read_bytes()[:-40])


def damage_extra_camera(folder: Path) -> None:
    path = folder / "reconstruction.json"
    description = json.loads(path.read_text())
    description["camera_to_world"].append(description["camera_to_world"][-1])
    path.write_text(json.dumps(description))


def damage_camera_matrix(folder: Path) -> None:
    path = folder / "reconstruction.json"
    description = json.loads(path.read_text())
    description["camera_to_world"][1] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    path.write_text(json.dumps(description))


def damage_focal(folder: Path) -> None:
    path = folder / "reconstruction.json"
    description = json.loads(path.read_text())
    description["intrinsics"]["fx"] = float("nan")
    path.write_text(json.dumps(description))


@pytest.mark.parametrize(
    ("damage", "storage", "message"),
    [
        (lambda folder: shutil.rmtree(folder), "STREAMED", "is not a folder"),
        (damage_missing_frame, "STREAMED", "frame files are missing"),
        (damage_truncated_frame, "PACKED", "truncated"),
        (damage_extra_camera, "PACKED", "inconsistent"),
        (damage_focal, "STREAMED", "intrinsics"),
        (damage_camera_matrix, "STREAMED", "4x4"),
    ],
    ids=["missing-folder", "missing-frame", "truncated-ply", "frame-count", "bad-focal", "bad-camera"],
)
def test_bad_result_raises_and_leaves_the_file_unchanged(empty_scene, room_result, damage, storage, message):
    folder, _ = room_result
    import_result(folder)
    counts = data_counts()
    damage(folder)
    with pytest.raises(Geo4DError, match=message):
        import_result(folder, ImportOptions(storage=storage))
    assert data_counts() == counts


def damage_zero_camera(folder: Path) -> None:
    path = folder / "reconstruction.json"
    description = json.loads(path.read_text())
    description["camera_to_world"][2] = [[0.0] * 4 for _ in range(4)]
    path.write_text(json.dumps(description))


def damage_bool_fps(folder: Path) -> None:
    path = folder / "reconstruction.json"
    description = json.loads(path.read_text())
    description["fps"] = True
    path.write_text(json.dumps(description))


def scene_state(scene: bpy.types.Scene) -> tuple:
    render = scene.render
    return (
        render.fps,
        render.fps_base,
        render.resolution_x,
        scene.frame_start,
        scene.frame_end,
        scene.camera,
    )


@pytest.mark.parametrize(
    ("damage", "storage", "message"),
    [
        (damage_zero_camera, "PACKED", r"camera_to_world\[2\] is not a rotation \(det 0,"),
        (damage_bool_fps, "STREAMED", "fps is true; it must be a number"),
    ],
    ids=["zero-camera", "bool-fps"],
)
def test_a_schema_breach_is_refused_naming_file_and_field_with_the_scene_unchanged(
    empty_scene, room_result, damage, storage, message
):
    folder, _ = room_result
    import_result(folder, ImportOptions(frame_start=5))
    counts, state = data_counts(), scene_state(empty_scene)
    damage(folder)
    with pytest.raises(
        Geo4DError, match=re.escape(f"{folder.resolve() / 'reconstruction.json'}: ") + message
    ):
        import_result(folder, ImportOptions(storage=storage))
    assert data_counts() == counts
    assert scene_state(empty_scene) == state


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            {"intrinsics": {"fx": 0.5, "fy": 0.5, "cx": 24.0, "cy": 16.0}},
            "a lens of 0.375 mm: below Blender's",
        ),
        ({"width": 3, "height": 2}, "describes 3x2 pixels; Blender renders at least 4 pixels a side"),
    ],
    ids=["lens-below-1mm", "resolution-below-4"],
)
def test_what_blender_would_clamp_silently_is_refused(empty_scene, room_result, entries, message):
    folder, _ = room_result
    path = folder / "reconstruction.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | entries))
    counts, state = data_counts(), scene_state(empty_scene)
    with pytest.raises(Geo4DError, match=message):
        import_result(folder)
    assert data_counts() == counts
    assert scene_state(empty_scene) == state


def test_a_failure_half_way_removes_everything_built_so_far(empty_scene, room_result, monkeypatch):
    folder, _ = room_result
    counts = data_counts()

    def failing_nodes(*args, **kwargs):
        raise RuntimeError("node tree failed")

    # Injects a Blender-side failure after the camera, collection, mesh and material exist.
    monkeypatch.setattr("geo4d.point_cloud_builder.build_point_nodes", failing_nodes)
    with pytest.raises(RuntimeError, match="node tree failed"):
        import_result(folder)
    assert data_counts() == counts

"""The version-dependent parts of the import on the running Blender: camera keys, and streamed or packed points."""

import bpy
import numpy as np

from geo4d.blender_compat import assigned_fcurves, streamed_points_supported
from geo4d.import_options import ImportOptions
from geo4d.point_cloud_builder import FRAMES_MODIFIER
from geo4d.scene_builder import import_result


def test_camera_keys_drive_the_camera(empty_scene, room_result):
    """The keys are written where this Blender evaluates them (4.2: the action; 4.4+: the camera's slot)."""
    folder, truth = room_result
    camera = import_result(folder, ImportOptions(frame_start=5)).camera
    curves = {(curve.data_path, curve.array_index): curve for curve in assigned_fcurves(camera)}
    assert len(curves) == 7
    for frame in (5, 5 + truth.num_frames - 1):
        bpy.context.scene.frame_set(frame)
        keyed = [curves["location", axis].evaluate(frame) for axis in range(3)]
        np.testing.assert_allclose(camera.matrix_world.translation, keyed, atol=1e-5)
    assert np.ptp([curves["location", 0].evaluate(5 + k) for k in range(truth.num_frames)]) > 0


def test_streamed_import_streams_or_packs_and_says_so(empty_scene, room_result):
    folder, truth = room_result
    imported = import_result(folder, ImportOptions(storage="STREAMED"))
    tree = imported.points.modifiers[FRAMES_MODIFIER].node_group
    reads_ply = any(node.bl_idname == "GeometryNodeImportPLY" for node in tree.nodes)
    packed = len(imported.points.data.vertices)
    if streamed_points_supported():
        assert reads_ply and packed == 0 and not imported.warnings
    else:
        assert not reads_ply and packed == truth.valid_mask().sum()
        assert [warning for warning in imported.warnings if "cannot stream points" in warning]

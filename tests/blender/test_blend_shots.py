"""The batch command's shots from a saved .blend: its movie strips over their visible (trimmed) frames, read by
a child Blender Python and named after the strips."""

from __future__ import annotations

import bpy
from movie_strips import add_movie_strip, write_clip

from geo4d.core.distributed.shots import list_shots


def test_a_blend_lists_its_movie_strips_as_shots(empty_scene, tmp_path):
    video = write_clip(tmp_path / "clip", frames=20)
    add_movie_strip(empty_scene, video, name="wide")
    trimmed = add_movie_strip(empty_scene, video, name="close", frame_start=40, channel=2)
    trimmed.frame_offset_start = 3
    trimmed.frame_offset_end = 5
    blend = tmp_path / "edit.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)

    shots = {shot.name: shot for shot in list_shots(blend, tmp_path / "results")}
    assert set(shots) == {"wide", "close"}
    assert (shots["wide"].start, shots["wide"].end) == (0, 20)
    assert (shots["close"].start, shots["close"].end) == (3, 15)
    assert shots["close"].video == video and shots["close"].output == tmp_path / "results" / "close"

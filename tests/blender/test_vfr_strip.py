"""A variable frame-rate movie as a real movie strip: Blender's own length, rate and rendered pictures are the
frames, rate and pictures that core.video reads for the same movie frames."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from movie_strips import add_movie_strip

from geo4d.core.evaluation.datasets.image_files import read_rgb
from geo4d.core.video import probe, read_frames

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))  # the marked-video helpers of the video tests
from test_video import frame_number  # noqa: E402
from test_video_vfr import GAPPY_PTS, write_timed  # noqa: E402


def sequencer_pictures(scene: bpy.types.Scene, strip: bpy.types.Strip, folder: Path) -> np.ndarray:
    """[T, H, W, 3] uint8: what the sequencer renders at each movie frame of `strip` (F12 render of the
    scene's sequencer output, written as PNG and read back), Standard view so colours stay as decoded."""
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 48, 100
    render.image_settings.file_format = "PNG"
    render.use_sequencer = True
    scene.view_settings.view_transform = "Standard"
    images = []
    for movie_frame in range(strip.frame_duration):
        scene.frame_set(round(strip.frame_start) + movie_frame)
        render.filepath = str(folder / f"frame_{movie_frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        images.append(read_rgb(render.filepath))
    return np.stack(images)


@pytest.mark.parametrize("kind", ["gappy", "phone"])
def test_strip_shows_the_frames_we_read(tmp_path, empty_scene, kind):
    if kind == "gappy":
        video = write_timed(tmp_path / "gappy.mkv", GAPPY_PTS, 1000)
    else:  # 1/600 s clock, 29.97 fps with a dropped picture and a 60 fps burst: Blender runs it at 59.94
        steps = [20] * 10 + [40] + [20] * 5 + [10, 10, 10] + [20] * 5
        video = write_timed(
            tmp_path / "phone.mp4",
            np.cumsum([0, *steps]).tolist(),
            600,
            options={"video_track_timescale": "600"},
        )
    strip = add_movie_strip(empty_scene, video, frame_start=3)
    info = probe(video)
    assert strip.frame_duration == info.num_frames
    assert strip.fps == pytest.approx(info.fps, rel=1e-6)
    shown = frame_number(sequencer_pictures(empty_scene, strip, tmp_path))
    clip = read_frames(video)
    np.testing.assert_array_equal(shown, frame_number(clip.frames))
    assert clip.warnings  # the mapping repeats or skips pictures, and says so

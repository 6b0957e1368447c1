"""Damaged frame files and footage at import and cache reuse: refused with the file named, nothing half-built."""

import logging
import re
from pathlib import Path

import bpy
import numpy as np
import pytest
from inspect_scene import data_counts, our_object
from movie_strips import add_movie_strip, write_clip

import geo4d
from geo4d.core.errors import Geo4DError
from geo4d.core.ply import read_points
from geo4d.core.result import frame_file_name
from geo4d.import_options import ImportOptions
from geo4d.result_cache import cached_result_matches, record_job
from geo4d.scene_builder import import_result

# The last of the result's 4 frames: the import must check every frame, not only the first.
DAMAGED_FRAME = 3


def replace_count(path: Path, count: str) -> None:
    data = path.read_bytes()
    path.write_bytes(re.sub(rb"element vertex \d+", b"element vertex " + count.encode(), data, count=1))


def set_nan(path: Path) -> None:
    offset = path.read_bytes().index(b"end_header\n") + len(b"end_header\n")
    data = bytearray(path.read_bytes())
    data[offset : offset + 4] = np.float32(np.nan).tobytes()  # x of the first point
    path.write_bytes(bytes(data))


FRAME_DAMAGE = {
    "negative-count": (lambda path: replace_count(path, "-1"), "'element vertex -1' is not a whole number"),
    "text-count": (lambda path: replace_count(path, "abc"), "'element vertex abc' is not a whole number"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:-7]), "truncated"),
    "random-bytes": (lambda path: path.write_bytes(np.random.default_rng(0).bytes(4000)), "'ply'"),
    "nan-coordinate": (set_nan, "1 of .* points have non-finite coordinates"),
}


@pytest.mark.parametrize("storage", ["STREAMED", "PACKED"])
@pytest.mark.parametrize(("damage", "problem"), FRAME_DAMAGE.values(), ids=FRAME_DAMAGE)
def test_a_damaged_frame_is_refused_with_its_file_named(empty_scene, room_result, storage, damage, problem):
    folder, _ = room_result
    import_result(folder, ImportOptions(storage=storage))
    counts, names = data_counts(), sorted(obj.name for obj in bpy.data.objects)
    path = folder / frame_file_name(DAMAGED_FRAME)
    damage(path)
    with pytest.raises(Geo4DError) as raised:
        import_result(folder, ImportOptions(storage=storage))
    message = str(raised.value)
    assert message.startswith(f"{path.resolve()} is not a valid Geo4D point file")
    assert re.search(problem, message) and "\n" not in message
    # Refused before any data-block was made: the previous import is untouched.
    assert data_counts() == counts and sorted(obj.name for obj in bpy.data.objects) == names


def test_a_source_video_blender_cannot_read_gives_no_background_and_a_warning(empty_scene, room_result):
    folder, _ = room_result
    video = folder / "video.mp4"
    video.write_text("not a video\n")
    imported = import_result(folder)
    assert [warning for warning in imported.warnings if str(video) in warning] == [
        f"Blender cannot read frames from the source video {video}; the camera has no background footage."
    ]
    assert len(bpy.data.movieclips) == 0
    camera = our_object("camera").data
    assert len(camera.background_images) == 0 and not camera.show_background_images


def test_a_readable_source_video_becomes_the_background(empty_scene, room_result):
    folder, truth = room_result
    imported = import_result(folder, options=ImportOptions(storage="PACKED"))
    (clip,) = bpy.data.movieclips
    assert clip.frame_duration == truth.num_frames and not imported.warnings
    assert our_object("camera").data.background_images[0].clip == clip


def test_a_cached_result_with_a_damaged_frame_is_not_reused(room_result, caplog):
    folder, _ = room_result
    fingerprint = {"video": ["clip.mp4", 1, 2], "settings": {"stride": 4}}
    record_job(folder, fingerprint)
    assert cached_result_matches(folder, fingerprint)
    assert not cached_result_matches(folder, {**fingerprint, "settings": {"stride": 2}})
    path = folder / frame_file_name(DAMAGED_FRAME)
    data = path.read_bytes()
    for damaged in (data[:-1], data + b"\0", re.sub(rb"vertex \d+", b"vertex -1", data, count=1)):
        path.write_bytes(damaged)
        with caplog.at_level(logging.WARNING, logger="geo4d.result_cache"):
            assert not cached_result_matches(folder, fingerprint)
        assert str(path) in caplog.text
        caplog.clear()
    path.write_bytes(data)
    assert cached_result_matches(folder, fingerprint)
    set_nan(path)
    assert not cached_result_matches(folder, fingerprint)


@pytest.mark.slow
def test_rerunning_over_a_damaged_cached_frame_writes_a_fresh_result(scene, tmp_path, tiny_model):
    strip = add_movie_strip(scene, write_clip(tmp_path / "clip", frames=8))
    folder = tmp_path / "result"
    settings = {"model": tiny_model, "result_folder": str(folder), "steps": 1, "size": (64, 64)}
    geo4d.reconstruct_strip(scene, strip.name, **settings)
    path = folder / frame_file_name(DAMAGED_FRAME)
    replace_count(path, "-1")
    geo4d.reconstruct_strip(scene, strip.name, **settings)
    assert not scene.geo4d.last_summary.endswith("cached result")
    assert len(read_points(path)) > 0
    geo4d.reconstruct_strip(scene, strip.name, **settings)
    assert scene.geo4d.last_summary.endswith("cached result")

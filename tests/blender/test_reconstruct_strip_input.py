"""Bad input to geo4d.reconstruct_strip, headless with real bpy: each case refused clearly, the scene untouched."""

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import bpy
import pytest
from movie_strips import STRIP_START, add_movie_strip, collection_names, write_clip

import geo4d
from geo4d.blender_compat import new_effect_strip, top_level_strips
from geo4d.core.errors import Geo4DError
from geo4d.strip_job import RUNNING, stop_all_on_load


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 20-frame, 64x40, 24 fps synthetic H.264 clip."""
    return write_clip(tmp_path_factory.mktemp("clip"))


def refused(message: str, **parameters) -> None:
    """The operator fails with `message`, starts no worker, and leaves every data-block as it was."""
    before = collection_names()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.geo4d.reconstruct_strip(**parameters)
    assert collection_names() == before
    assert not RUNNING


def test_no_strip_selected(scene, clip):
    refused("No strip is selected")
    add_movie_strip(scene, clip).select = True
    scene.sequence_editor.active_strip = None
    refused("No strip is selected")


def test_unknown_strip_name(scene, clip):
    add_movie_strip(scene, clip)
    refused("no strip named 'nope'", strip="nope")


def write_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\0\0" * 8000)
    return path


@pytest.mark.skipif(not bpy.app.build_options.audaspace, reason="this bpy build has no audio (Audaspace)")
def test_sound_strips_are_refused(scene, tmp_path):
    top_level_strips(scene.sequence_editor_create()).new_sound(
        "music", str(write_wav(tmp_path / "music.wav")), 1, 1
    )
    refused("'music' is a sound strip", strip="music")


def test_image_and_scene_strips_are_refused(scene, clip, tmp_path):
    strips = top_level_strips(scene.sequence_editor_create())
    still = tmp_path / "still.png"
    image = bpy.data.images.new("still", 8, 8)
    image.save(filepath=str(still))
    strips.new_image("still", str(still), 2, 1)
    strips.new_scene("nested", bpy.data.scenes.new("nested"), 3, 1)
    refused("'still' is an image strip", strip="still")
    refused("'nested' is a scene strip", strip="nested")


def test_missing_media_file(scene, clip, tmp_path):
    moved = shutil.copy(clip, tmp_path / "moved.mp4")
    add_movie_strip(scene, Path(moved))
    Path(moved).unlink()
    refused("movie of the strip 'shot' is missing")


def test_corrupt_media_file(scene, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a movie" * 64)
    add_movie_strip(scene, broken)
    refused("damaged or in an unsupported format")


def test_range_outside_the_strip(scene, clip):
    add_movie_strip(scene, clip)
    refused("not within the visible frames 10..29", use_strip_range=False, frame_first=5, frame_last=25)
    refused("Frames 20..19 are not within", use_strip_range=False, frame_first=20, frame_last=19)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda strip, editor: setattr(strip, "use_reverse_frames", True), "plays its frames in reverse"),
        (lambda strip, editor: setattr(strip, "strobe", 2.0), "Strobe 2"),
        (
            lambda strip, editor: new_effect_strip(editor, "slow", "SPEED", 2, STRIP_START, strip),
            "retimed by the speed effect 'slow'",
        ),
    ],
    ids=["reversed", "strobe", "speed-effect"],
)
def test_retimed_or_reversed_strips_are_refused(scene, clip, change, message):
    strip = add_movie_strip(scene, clip)
    change(strip, scene.sequence_editor)
    refused(message, strip="shot")


def test_invalid_checkpoint_path(scene, clip, tmp_path):
    add_movie_strip(scene, clip)
    refused("checkpoint .*model.ckpt does not exist", model=str(tmp_path / "model.ckpt"))


def test_batch_function_refuses_bad_settings_and_a_bad_worker_python(scene, clip, tmp_path):
    add_movie_strip(scene, clip)
    before = collection_names()
    with pytest.raises(Geo4DError, match="geo4d.reconstruct_strip: stride = 0 is invalid"):
        geo4d.reconstruct_strip(scene, "shot", model="tiny", stride=0)
    with pytest.raises(Geo4DError, match="unexpected keyword argument 'colour'"):
        geo4d.reconstruct_strip(scene, "shot", colour="red")
    with pytest.raises(Geo4DError, match="worker Python .* is not an executable file"):
        geo4d.reconstruct_strip(scene, "shot", model="tiny", worker_python=str(tmp_path / "python"))
    assert collection_names() == before


def test_negative_timeline_frames_are_refused(scene, clip):
    add_movie_strip(scene, clip, frame_start=-4)
    refused("before timeline frame 0")


def test_register_adds_panels_properties_and_operators_and_unregister_removes_them(clip):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    names = ("SEQUENCER_PT_geo4d", "VIEW3D_PT_geo4d", "GEO4D_OT_reconstruct_strip", "GEO4D_OT_cancel")
    geo4d.register()
    try:
        assert all(hasattr(bpy.types, name) for name in names)
        assert bpy.types.SEQUENCER_PT_geo4d.bl_category == bpy.types.VIEW3D_PT_geo4d.bl_category == "Geo4D"
        assert bpy.context.scene.geo4d.stride == 4 and not bpy.context.window_manager.geo4d_progress.running
        assert not bpy.ops.geo4d.cancel.poll()  # nothing running
        assert stop_all_on_load in bpy.app.handlers.load_pre
    finally:
        geo4d.unregister()
    assert stop_all_on_load not in bpy.app.handlers.load_pre
    assert not any(hasattr(bpy.types, name) for name in names)
    assert not hasattr(bpy.types.Scene, "geo4d") and not hasattr(bpy.types.WindowManager, "geo4d_progress")


def test_the_batch_function_is_exposed_without_importing_bpy():
    code = "import sys, geo4d; print(callable(geo4d.reconstruct_strip), 'bpy' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.stdout.split() == ["True", "False"], completed.stderr

"""geo4d.reconstruct_strip end to end with real bpy, a real clip and the tiny model; cancel and worker death."""

import os
import shutil
import signal
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from inspect_scene import evaluated_points, project_with_blender
from movie_strips import STRIP_START, add_movie_strip, collection_names, write_clip

import geo4d
from geo4d.blender_compat import assigned_fcurves, streamed_points_supported, top_level_strips
from geo4d.core.errors import Cancelled, Geo4DError
from geo4d.core.result import Reconstruction
from geo4d.owned_data import RESULT_TAG, ROLE_TAG
from geo4d.preferences import SetupChoice, strip_result_folder
from geo4d.strip_job import RUNNING, StripJob, StripSettings

FRAMES = 18
FAST = {"steps": 1, "size": (64, 64)}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"), frames=FRAMES)


def ours(role: str) -> list[bpy.types.Object]:
    return [obj for obj in bpy.data.objects if obj.get(ROLE_TAG) == role]


def keyed_frames(camera: bpy.types.Object) -> list[int]:
    curves = assigned_fcurves(camera)
    return sorted({round(point.co[0]) for curve in curves for point in curve.keyframe_points})


def test_operator_puts_camera_and_points_on_exactly_the_strips_frames(scene, clip, tmp_path, tiny_model):
    scene.render.fps, scene.frame_start, scene.frame_end = 30, 1, 250
    strip = add_movie_strip(scene, clip)
    strip.frame_offset_start = 2  # visible: timeline 12..27 = movie frames 2..17
    result = tmp_path / "result"
    outcome = bpy.ops.geo4d.reconstruct_strip(
        model=tiny_model, steps=1, input_size=(64, 64), result_folder=str(result)
    )
    assert outcome == {"FINISHED"}
    (camera,), (points,) = ours("camera"), ours("points")
    first, last = STRIP_START + 2, STRIP_START + FRAMES - 1
    assert keyed_frames(camera) == list(range(first, last + 1))
    truth = Reconstruction.load(result)
    assert truth.source_frames.tolist() == list(range(2, FRAMES))
    assert truth.valid_mask().any()
    assert (scene.frame_start, scene.frame_end) == (1, 250)  # the scene keeps its own frame range
    # Every frame's points through the camera at its timeline frame land on their pixels. A wrong frame or
    # camera moves them by pixels; model output can hold points at grazing depths where float32 positions
    # alone move a projection by a few hundredths of a pixel, so 0.1 px here. The 1e-3 px exactness of
    # the importer is checked on ground truth (tests/blender/test_scene_builder.py).
    tolerance = 0.1
    for k in range(truth.num_frames):
        scene.frame_set(first + k)
        world, _, _ = evaluated_points(points)
        rows, cols = np.nonzero(truth.valid_mask()[k])
        assert len(world) == len(rows)
        pixels = project_with_blender(camera, world, truth.width, truth.height)
        np.testing.assert_allclose(pixels, np.stack([cols + 0.5, rows + 0.5], axis=-1), atol=tolerance)
    for outside in (first - 1, last + 1):
        scene.frame_set(outside)
        assert len(evaluated_points(points)[0]) == 0
    # The scene keeps its own fps; the mismatch is reported.
    assert scene.render.fps == 30
    assert "plays at 30 fps and the movie at 24 fps" in scene.geo4d.last_warnings
    # The Last Run box shows every warning of the result (the aligner's trust warnings among them); this
    # clip is one of synth's scenes, so the tiny model does not warn about the footage.
    assert all(warning in scene.geo4d.last_warnings for warning in truth.warnings)
    assert "trained on synthetic scenes only" not in scene.geo4d.last_warnings
    assert scene.geo4d.last_summary.startswith(f"{FRAMES - 2} frames ({first}-{last}), focal ")


def test_batch_function_replaces_only_the_strips_previous_objects(scene, clip, tmp_path, tiny_model):
    strip = add_movie_strip(scene, clip, name="a")
    strip.frame_offset_end = FRAMES - 12  # shorter than one window: the pipeline pads it and warns
    choice = SetupChoice(cache_folder=str(tmp_path / "cache"))
    folder = strip_result_folder(choice, scene.name, "a")
    assert folder != strip_result_folder(choice, scene.name, "b")
    assert folder.is_relative_to(tmp_path / "cache")
    # A user's object named like ours, a previous result of strip a (streamed), another result of ours.
    bystander = bpy.data.objects.new(f"Geo4D {folder.name} points", None)
    scene.collection.objects.link(bystander)
    shutil.copytree(clip.parent, folder)
    assert bpy.ops.geo4d.import_result(directory=str(folder)) == {"FINISHED"}
    assert bpy.ops.geo4d.import_result(directory=str(clip.parent), frame_start=100) == {"FINISHED"}
    other = {obj.name for obj in bpy.data.objects if obj.get(RESULT_TAG) == str(clip.parent.resolve())}

    made = geo4d.reconstruct_strip(
        scene, "a", model=tiny_model, storage="PACKED", result_folder=str(folder), **FAST
    )
    assert keyed_frames(made.camera) == list(range(STRIP_START, STRIP_START + 12))
    assert any("only 12 frames" in warning for warning in made.warnings)
    mine = [obj for obj in bpy.data.objects if obj.get(RESULT_TAG) == str(folder)]
    assert sorted(obj.get(ROLE_TAG) for obj in mine) == ["camera", "points"]
    assert len(made.points.data.vertices) > 0  # packed: the streamed previous import is gone
    assert {
        obj.name for obj in bpy.data.objects if obj.get(RESULT_TAG) == str(clip.parent.resolve())
    } == other
    assert bystander.name == f"Geo4D {folder.name} points" and bystander.get(RESULT_TAG) is None
    assert made.points.name != bystander.name

    # Unchanged strip, model and settings: the cached result is imported again without a worker.
    started = time.perf_counter()
    again = geo4d.reconstruct_strip(scene, "a", model=tiny_model, result_folder=str(folder), **FAST)
    assert time.perf_counter() - started < 5.0 and scene.geo4d.last_summary.endswith("cached result")
    # Streamed now (where this Blender streams): the packed objects were replaced.
    assert (len(again.points.data.vertices) == 0) == streamed_points_supported()
    assert len([obj for obj in bpy.data.objects if obj.get(RESULT_TAG) == str(folder)]) == 2
    changed = StripSettings(model=tiny_model, result_folder=str(folder), seed=7, **FAST)
    assert not StripJob(scene, top_level_strips(scene.sequence_editor)["a"], changed).cached


def poll_until(job: StripJob, stage: str, timeout: float = 300.0) -> None:
    """Step the job until the worker reports `stage`; the stage must last long enough to be seen running."""
    deadline = time.monotonic() + timeout
    while job.status.stage != stage and not job.step() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.status.stage == stage and not job.status.finished, job.status


def test_cancel_midway_leaves_the_scene_exactly_as_before(scene, clip, tmp_path, tiny_model):
    strip = add_movie_strip(scene, clip)
    before = collection_names()
    result = tmp_path / "result"
    job = StripJob(scene, strip, StripSettings(model=tiny_model, stride=1, result_folder=str(result), **FAST))
    job.start()  # the modal operator's path: start, then step() on a timer
    poll_until(job, "predict")
    assert job.status.state == "running" and RUNNING == [job]
    progress = bpy.context.window_manager.geo4d_progress  # what the panel and the status bar show
    assert progress.running and progress.text == job.status_text() and "window" in progress.text
    assert bpy.ops.geo4d.cancel() == {"FINISHED"}
    deadline = time.monotonic() + 5.0
    while not job.step() and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(Cancelled, match="nothing was added"):
        job.finish()
    assert collection_names() == before
    assert not result.exists() and not RUNNING and not progress.running


def test_a_dying_worker_is_reported_and_blender_carries_on(scene, clip, tmp_path, tiny_model):
    strip = add_movie_strip(scene, clip)
    before = collection_names()
    job = StripJob(
        scene, strip, StripSettings(model=tiny_model, stride=1, result_folder=str(tmp_path / "r"), **FAST)
    )
    job.start()
    poll_until(job, "predict")  # the longest stage: decoding a short clip can pass between two polls
    os.kill(job.worker.process.pid, signal.SIGKILL)
    while not job.step():
        time.sleep(0.02)
    with pytest.raises(Geo4DError, match="killed by signal 9"):
        job.finish()
    assert collection_names() == before
    assert bpy.ops.geo4d.import_result.poll()  # Blender is still fine and the add-on still registered


def test_check_setup_reports_the_worker_python_in_plain_words(scene, capfd):
    assert bpy.ops.geo4d.check_setup() == {"FINISHED"}
    reported = capfd.readouterr().out
    assert "Worker Python 3." in reported and "torch " in reported
    assert "No usable CUDA GPU" in reported or "GPU: " in reported
    assert "Model tiny loads" in reported or "Model problem: The built-in model 'tiny' is missing" in reported


def test_opening_another_file_stops_a_running_worker(scene, clip, tmp_path, tiny_model):
    strip = add_movie_strip(scene, clip)
    job = StripJob(scene, strip, StripSettings(model=tiny_model, result_folder=str(tmp_path / "r"), **FAST))
    job.start()
    pid = job.worker.process.pid
    bpy.ops.wm.read_factory_settings(use_empty=True)  # runs the load_pre handlers, as File > Open does
    assert not RUNNING and job.status.state == "cancelled" and "another file" in job.status.message
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

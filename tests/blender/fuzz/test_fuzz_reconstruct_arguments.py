"""Bad arguments to geo4d.reconstruct_strip and its operator: one clear line naming the argument, at once.

Each call must raise Geo4DError (the operator: end CANCELLED, which bpy.ops raises as RuntimeError) with
one line that names the argument as the caller typed it, before any worker process starts, and leave the
scene as it was. A worker that starts is a failure in itself: the tripwire below raises instead of
starting it, so that a setting checked only after the reconstruction is caught in seconds.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import bpy
import pytest
from movie_strips import STRIP_START, add_movie_strip, collection_names, write_clip

import geo4d
from geo4d.blender_compat import top_level_strips
from geo4d.core.errors import Geo4DError
from geo4d.core.worker.parent import WorkerProcess
from geo4d.strip_job import RUNNING

# Seconds a refusal may take: it reads the strip's settings, never the video or a network.
REFUSAL_SECONDS = 5.0
NAN = math.nan

# (settings of geo4d.reconstruct_strip, the words its refusal must hold one of: the argument's name, or
# for a range outside the strip the range as given)
FUNCTION_ARGUMENTS = [
    ({"frame_range": ("a", "b")}, ("frame_range",)),
    ({"frame_range": (5,)}, ("frame_range",)),
    ({"frame_range": (10, 12, 14)}, ("frame_range",)),
    ({"frame_range": (12.5, 14)}, ("frame_range",)),
    ({"frame_range": (None, None)}, ("frame_range",)),
    ({"frame_range": "10-20"}, ("frame_range",)),
    ({"frame_range": 12}, ("frame_range",)),
    ({"frame_range": (STRIP_START, 2**70)}, ("frame_range",)),
    ({"frame_range": (STRIP_START + 5, STRIP_START + 2)}, ("frame_range", "frames 15..12")),
    ({"point_size": NAN}, ("point_size",)),
    ({"point_size": math.inf}, ("point_size",)),
    ({"point_size": -1.0}, ("point_size",)),
    ({"point_size": 0.0}, ("point_size",)),
    ({"point_size": 1e9}, ("point_size",)),
    ({"point_size": "2"}, ("point_size",)),
    ({"stride": 16}, ("stride",)),
    ({"stride": 0}, ("stride",)),
    ({"stride": 2.5}, ("stride",)),
    ({"stride": "4"}, ("stride",)),
    ({"steps": -1}, ("steps",)),
    ({"steps": 1001}, ("steps",)),
    ({"steps": None}, ("steps",)),
    ({"seed": 2**80}, ("seed",)),
    ({"seed": -1}, ("seed",)),
    ({"storage": "X"}, ("storage",)),
    ({"storage": None}, ("storage",)),
    ({"size": (63, 64)}, ("size",)),
    ({"size": (64,)}, ("size",)),
    ({"size": ("a", "b")}, ("size",)),
    ({"size": 64}, ("size",)),
    ({"timeout": 0}, ("timeout",)),
    ({"timeout": -1.0}, ("timeout",)),
    ({"timeout": NAN}, ("timeout",)),
    ({"timeout": "10"}, ("timeout",)),
    ({"points_per_frame": -1}, ("points_per_frame",)),
    ({"points_per_frame": 1.5}, ("points_per_frame",)),
    ({"device": "gpu"}, ("device",)),
    ({"precision": "fp8"}, ("precision",)),
    ({"model": 5}, ("model",)),
    ({"result_folder": 5}, ("result_folder",)),
    ({"worker_python": 5}, ("worker_python",)),
    ({"reuse_result": "yes"}, ("reuse_result",)),
    ({"colour": "red"}, ("colour",)),
]
# (properties of bpy.ops.geo4d.reconstruct_strip, the words its refusal must hold one of: the property's
# name, its label in the panel, or the range as given). Blender clamps numbers into each property's
# range before the operator runs.
OPERATOR_ARGUMENTS = [
    ({"use_strip_range": False, "frame_first": 20, "frame_last": 15}, ("frame_first", "frames 20..15")),
    ({"use_strip_range": False, "frame_first": 0, "frame_last": 5}, ("frame_first", "frames 0..5")),
    ({"input_size": (63, 64)}, ("input_size", "input size")),
    ({"input_size": (2048, 0)}, ("input_size", "input size")),
    ({"point_size": NAN}, ("point_size", "point size")),
    ({"strip": "nope"}, ("nope",)),
    ({"scene_name": "nope"}, ("nope",)),
    ({"model": "/no/such/model.safetensors"}, ("/no/such/model.safetensors",)),
]


def arguments_id(arguments: dict) -> str:
    return ",".join(f"{key}={value!r}" for key, value in arguments.items())


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def no_worker(monkeypatch):
    """A worker start fails the test: every refusal must come before one."""

    def tripwire(self, *arguments, **keywords):
        raise AssertionError("a worker process was started: the bad argument passed the checks")

    monkeypatch.setattr(WorkerProcess, "start", tripwire)


def scene_state(scene: bpy.types.Scene) -> tuple:
    return (
        collection_names(),
        scene.frame_start,
        scene.frame_end,
        scene.camera,
        len(top_level_strips(scene.sequence_editor)),
    )


def check_refusal(message: str, words: tuple[str, ...], seconds: float) -> None:
    assert message.isprintable() and "Traceback" not in message, message
    assert any(word in message.lower() for word in words), f"names none of {words}: {message}"
    assert seconds < REFUSAL_SECONDS, f"took {seconds:.1f} s to refuse"
    assert not RUNNING


@pytest.mark.parametrize(
    ("settings", "words"), [pytest.param(*case, id=arguments_id(case[0])) for case in FUNCTION_ARGUMENTS]
)
def test_reconstruct_strip_refuses_a_bad_setting_at_once(scene, clip, no_worker, settings, words):
    strip = add_movie_strip(scene, clip)
    before = scene_state(scene)
    started = time.perf_counter()
    with pytest.raises(Geo4DError) as refused:
        geo4d.reconstruct_strip(scene, strip, **{"model": "tiny", **settings})
    check_refusal(str(refused.value), words, time.perf_counter() - started)
    assert scene_state(scene) == before


@pytest.mark.parametrize(
    ("properties", "words"), [pytest.param(*case, id=arguments_id(case[0])) for case in OPERATOR_ARGUMENTS]
)
def test_reconstruct_operator_cancels_a_bad_property_at_once(scene, clip, no_worker, properties, words):
    add_movie_strip(scene, clip)
    before = scene_state(scene)
    started = time.perf_counter()
    with pytest.raises(RuntimeError) as cancelled:
        bpy.ops.geo4d.reconstruct_strip(**{"model": "tiny", **properties})
    message = str(cancelled.value).removeprefix("Error: ").rstrip("\n")
    check_refusal(message, words, time.perf_counter() - started)
    assert scene_state(scene) == before

"""The panel's path of geo4d.reconstruct_strip: invoke() goes modal, modal() follows the worker, Esc cancels it.

What is real and what is not: the bpy module is Blender in background mode. It has a window manager with
one window (so a real timer is added with `event_timer_add` and a real modal handler with
`modal_handler_add`), but no event loop and no event state: the timer never fires, no key press
arrives, and `bpy.ops...("INVOKE_DEFAULT")` calls execute() because Blender calls invoke() only with the
window's current event. Blender's event simulation (`Window.event_simulate`) needs
`--enable-event-simulate` on Blender's command line, which the module cannot set
(`bpy.app.use_event_simulate` can only be switched off), and `bpy.types.Event` cannot be made from
Python. So these tests
- call the operator through Blender (`bpy.ops.geo4d.reconstruct_strip`), which creates the real operator
  with its properties; its execute() hands over to its own invoke() (the test's one change to the class)
  with `runs_modally` answering True (background mode is the one thing that is not as in the UI);
  invoke() starts the real worker, adds the real timer and modal handler and sets the status text, and
  Blender keeps the operator alive as a running modal operator;
- then do what Blender's event loop would: call the operator's modal() with an event carrying only what
  invoke() and modal() read (`type`, `value`): "TIMER" every timer interval while the real worker runs,
  "ESC" "PRESS" for Esc, "MOUSEMOVE" for an unrelated event.
"""

import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest
from movie_strips import add_movie_strip, collection_names, write_clip

from geo4d.operators import reconstruct_strip
from geo4d.operators.reconstruct_strip import TIMER_INTERVAL, GEO4D_OT_reconstruct_strip
from geo4d.owned_data import ROLE_TAG
from geo4d.strip_job import RUNNING

FAST = {"steps": 1, "input_size": (64, 64), "reuse_result": False}
TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
MOUSE_MOVE = SimpleNamespace(type="MOUSEMOVE", value="NOTHING")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"), frames=16)


@pytest.fixture
def invoked(scene, monkeypatch):
    """`invoke(**settings)`: geo4d.reconstruct_strip invoked as from the panel; (outcome, the operator)."""
    operators = []

    def execute_as_invoked(self, context):
        operators.append(self)
        return self.invoke(context, MOUSE_MOVE)

    monkeypatch.setattr(reconstruct_strip, "runs_modally", lambda context: True)
    monkeypatch.setattr(GEO4D_OT_reconstruct_strip, "execute", execute_as_invoked)

    def invoke(**settings):
        outcome = bpy.ops.geo4d.reconstruct_strip("INVOKE_DEFAULT", **settings)
        (operator,) = operators
        return outcome, operator

    yield invoke
    # Blender's handler still holds the operator (no event loop took its result): free it while the class
    # is registered, before the fixture unregisters the add-on.
    bpy.ops.wm.read_factory_settings(use_empty=True)


def run_timer(operator, limit: float = 300.0) -> set[str]:
    """modal() on a timer event every TIMER_INTERVAL until the operator ends; its outcome."""
    deadline = time.monotonic() + limit
    while (outcome := operator.modal(bpy.context, TIMER)) == {"RUNNING_MODAL"}:
        assert time.monotonic() < deadline, "the modal operator did not end"
        time.sleep(TIMER_INTERVAL)
    return outcome


def test_modal_run_follows_the_worker_and_imports_on_the_strips_frames(invoked, clip, tmp_path, tiny_model):
    scene = bpy.context.scene
    add_movie_strip(scene, clip)
    outcome, operator = invoked(model=tiny_model, result_folder=str(tmp_path / "result"), **FAST)
    assert outcome == {"RUNNING_MODAL"}
    assert RUNNING == [operator._job] and operator._job.worker.process.poll() is None
    assert operator._timer.time_step == pytest.approx(TIMER_INTERVAL)
    assert bpy.context.window_manager.geo4d_progress.running
    assert operator.modal(bpy.context, MOUSE_MOVE) == {"PASS_THROUGH"}  # the UI stays usable meanwhile

    assert run_timer(operator) == {"FINISHED"}
    assert not RUNNING and not bpy.context.window_manager.geo4d_progress.running
    camera = [obj for obj in bpy.data.objects if obj.get(ROLE_TAG) == "camera"]
    assert len(camera) == 1 and scene.geo4d.last_summary.startswith("16 frames (10-25)")


def test_esc_stops_the_worker_and_adds_nothing(invoked, clip, tmp_path, tiny_model):
    scene = bpy.context.scene
    add_movie_strip(scene, clip)
    before = collection_names()
    outcome, operator = invoked(model=tiny_model, result_folder=str(tmp_path / "result"), **FAST)
    assert outcome == {"RUNNING_MODAL"}
    process = operator._job.worker.process

    assert operator.modal(bpy.context, ESC) == {"RUNNING_MODAL"}
    assert run_timer(operator, limit=30.0) == {"CANCELLED"}
    assert process.wait(timeout=5) is not None
    assert not RUNNING and operator._job.status.state == "cancelled"
    assert collection_names() == before and not (tmp_path / "result").exists()

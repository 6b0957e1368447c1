"""The preferences' Set Up GPU Environment and Convert with real bpy: refusals as one line, Esc and Cancel,
a real conversion in the worker, and the installed extension making an environment its worker then runs in.

(The modal path is driven as in test_reconstruct_strip_modal.py: the bpy module has no event loop.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest
from package_index import clear_pip_configuration, serve, write_simple_index, write_wheel

from geo4d import preference_tasks
from geo4d.core.environment_setup import PINS_FILE, SLOTS, current_python
from geo4d.core.network.checkpoint import INFERENCE_PARTS, build_part
from geo4d.core.network.config import NetworkConfig
from geo4d.operators import environment_setup
from geo4d.operators.environment_setup import GEO4D_OT_convert_checkpoint, GEO4D_OT_setup_environment
from geo4d.preferences import ADDON_NAME, TASKS

ROOT = Path(__file__).resolve().parents[2]
# This machine's environment, pip configuration included (the tests clear it for the set-up's own pip).
ORIGINAL_ENVIRONMENT = dict(os.environ)
TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
PROBE = "geo4d-probe-a==1.0"


@pytest.fixture(autouse=True)
def _pip_without_configuration(monkeypatch):
    clear_pip_configuration(monkeypatch)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    write_wheel(folder, "geo4d-probe-a", "1.0")
    return folder


@pytest.fixture
def preferences(scene, tmp_path, monkeypatch):
    """The add-on's real preferences, with its user folder in tmp_path; removed afterwards."""

    def user_folder(name: str) -> Path:  # as preferences.user_folder makes it, in tmp_path
        folder = tmp_path / "user" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    monkeypatch.setattr(preference_tasks, "user_folder", user_folder)
    addons = bpy.context.preferences.addons
    addon = addons.new()
    addon.module = ADDON_NAME
    yield addon.preferences
    preference_tasks.stop_all()
    if addons.get(ADDON_NAME) is not None:  # (factory settings, read by a test, remove it themselves)
        addons.remove(addons[ADDON_NAME])


def test_online_access_off_is_one_line_and_no_request(preferences, wheels, tmp_path):
    assert not bpy.app.online_access  # as in a Blender without "Allow Online Access"
    with serve(write_simple_index(wheels, tmp_path / "index"), tmp_path / "server.log") as index:
        with pytest.raises(RuntimeError, match="Online access is off"):
            bpy.ops.geo4d.setup_environment(index_url=index.url, packages=PROBE)
        assert index.requests() == []
    assert preferences.task_message.startswith("Online access is off, so nothing can be downloaded: allow it")
    assert preferences.task_failed and preferences.worker_python == "" and not TASKS
    assert not (tmp_path / "user" / "python" / "setup.log").exists()


def test_a_folder_without_wheels_is_one_line(preferences, tmp_path):
    preferences.wheel_folder = str(tmp_path)
    with pytest.raises(RuntimeError, match="holds no .whl files"):
        bpy.ops.geo4d.setup_environment(packages=PROBE)
    assert preferences.task_message == (
        f"The wheel folder {tmp_path} holds no .whl files: download the wheels there first (see the add-on's "
        "GPU set-up guide), or clear 'Wheel Folder' to install online."
    )


@pytest.fixture
def invoked(preferences, monkeypatch):
    """`invoke(operator class, **settings)`: the operator invoked as from the preferences; (outcome, operator)."""
    operators = []

    def execute_as_invoked(self, context):
        operators.append(self)
        return self.invoke(context, TIMER)

    monkeypatch.setattr(environment_setup, "runs_modally", lambda context: True)

    def invoke(cls, **settings):
        monkeypatch.setattr(cls, "execute", execute_as_invoked)
        module, name = cls.bl_idname.split(".")
        outcome = getattr(getattr(bpy.ops, module), name)("INVOKE_DEFAULT", **settings)
        return outcome, operators[-1]

    yield invoke
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_esc_cancels_the_set_up_and_keeps_the_worker_python(invoked, preferences, wheels, tmp_path):
    preferences.worker_python = "/opt/studio/python"
    preferences.wheel_folder = str(wheels)
    outcome, operator = invoked(GEO4D_OT_setup_environment, packages=PROBE)
    assert outcome == {"RUNNING_MODAL"} and TASKS == [operator._task]
    assert operator.modal(bpy.context, TIMER) == {"RUNNING_MODAL"}
    process = operator._task.run._process
    assert process.poll() is None  # the venv is being made
    from test_panels import draw_preferences, operators, texts

    found = draw_preferences(preferences)
    assert "bpy.ops.geo4d.cancel_preferences_task()" in operators(found)
    assert "Set Up GPU Environment: Creating the environment" in texts(found)

    assert operator.modal(bpy.context, ESC) == {"CANCELLED"}
    assert process.poll() is not None and not TASKS
    assert preferences.task_message == (
        "Set-up cancelled; the environment in use is unchanged (set up again to resume)."
    )
    assert preferences.worker_python == "/opt/studio/python"
    assert current_python(tmp_path / "user" / "python") is None
    assert "bpy.ops.geo4d.setup_environment()" in operators(draw_preferences(preferences))


@pytest.fixture(scope="module")
def published(tmp_path_factory, write_published_checkpoints) -> tuple[Path, Path]:
    """A tiny network's model.ckpt and vae.ckpt in the published layout."""
    config = NetworkConfig.tiny()
    parts = {part: build_part(part, config) for part in (*INFERENCE_PARTS, "text", "visual", "resampler")}
    return write_published_checkpoints(tmp_path_factory.mktemp("published"), parts, config)


def test_convert_switches_the_model_and_checks_that_it_loads(preferences, published, tmp_path):
    preferences.checkpoint = str(published[0])
    assert bpy.ops.geo4d.convert_checkpoint(preset="tiny") == {"FINISHED"}
    (converted,) = (tmp_path / "user" / "models").glob("*.safetensors")
    assert preferences.checkpoint == str(converted) and preferences.vae_checkpoint == ""
    assert preferences.task_message == (
        f"Converted into {converted} ({converted.stat().st_size / 1e6:.1f} MB); it is now the model."
    )
    assert not preferences.task_failed
    size = f"{converted.stat().st_size / 1e6:.1f} MB on disk"
    assert f"Model {converted} loads: " in preferences.setup_report and size in preferences.setup_report
    assert published[0].is_file() and published[1].is_file()  # the downloads stay


def test_esc_cancels_a_conversion_and_keeps_the_model(invoked, preferences, published, tmp_path):
    preferences.checkpoint = str(published[0])
    outcome, operator = invoked(GEO4D_OT_convert_checkpoint, preset="tiny")
    assert outcome == {"RUNNING_MODAL"}
    process = operator._task.run.worker.process
    assert operator.modal(bpy.context, ESC) == {"CANCELLED"}
    assert process.poll() is not None and not TASKS
    assert preferences.task_message == "Cancelled; the worker was stopped." and preferences.task_failed
    assert preferences.checkpoint == str(published[0])
    assert list((tmp_path / "user" / "models").iterdir()) == []


def test_convert_refuses_a_model_that_is_not_a_ckpt(preferences, tmp_path):
    preferences.checkpoint = str(tmp_path / "geo4d.safetensors")
    with pytest.raises(RuntimeError, match="Choose the downloaded Geo4D model.ckpt"):
        bpy.ops.geo4d.convert_checkpoint()
    assert preferences.task_failed and "model.ckpt" in preferences.task_message


INSTALL_AND_SET_UP = """
import sys
import bpy

zip_path, index_url, packages = sys.argv[1:4]
assert bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True
) == {"FINISHED"}
bpy.context.preferences.system.use_online_access = True  # "Allow Online Access" on
preferences = bpy.context.preferences.addons["bl_ext.user_default.geo4d"].preferences
assert bpy.ops.geo4d.setup_environment(index_url=index_url, packages=packages) == {"FINISHED"}
print("worker_python", preferences.worker_python)
print("message", preferences.task_message)
print("report", preferences.setup_report.replace(chr(10), " | "))
"""


def run_blender(
    script: str, *arguments: str, user: Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `script` in a fresh Blender (the bpy module) with its user folder in `user`."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ, BLENDER_USER_RESOURCES=str(user)),
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def printed(completed: subprocess.CompletedProcess) -> dict[str, str]:
    """The "name value" lines the script printed."""
    return dict(line.split(" ", 1) for line in completed.stdout.splitlines() if " " in line)


def environment_root(user: Path) -> Path:
    """The environment folder of the extension installed in the Blender user folder `user`."""
    return user / "extensions" / ".user" / "user_default" / "geo4d" / "python"


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dist")
    completed = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--output-dir", str(output)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    (zip_path,) = output.glob("*.zip")
    return zip_path


def test_installed_extension_sets_up_an_environment_its_worker_runs_in(extension_zip, wheels, tmp_path):
    started = time.monotonic()
    user = tmp_path / "blender-user"
    with serve(write_simple_index(wheels, tmp_path / "index"), tmp_path / "server.log") as index:
        fields = printed(run_blender(INSTALL_AND_SET_UP, str(extension_zip), index.url, PROBE, user=user))
        assert "GET /geo4d-probe-a/ HTTP/1.1" in index.requests()
    python = current_python(environment_root(user))
    assert python is not None and python.parent.parent.name in SLOTS
    assert fields["worker_python"] == str(python)
    assert fields["message"] == f"Environment ready: {python}"
    # Check Setup ran in the new environment: the worker's own sys.executable, without torch there.
    assert fields["report"].startswith(f"Worker Python {sys.version_info.major}.{sys.version_info.minor}")
    assert f": {python} | torch cannot be imported in this Python" in fields["report"]
    print(f"installed set-up took {time.monotonic() - started:.0f} s")


SET_UP_AND_RECONSTRUCT = (
    INSTALL_AND_SET_UP
    + """
import logging
logging.basicConfig(level=logging.INFO)
from bl_ext.user_default.geo4d.blender_compat import top_level_strips

scene = bpy.context.scene
strip = top_level_strips(scene.sequence_editor_create()).new_movie("shot", sys.argv[4], channel=1, frame_start=5)
scene.sequence_editor.active_strip = strip
assert bpy.ops.geo4d.reconstruct_strip(model="tiny", steps=1, input_size=(64, 64)) == {"FINISHED"}
print("summary", scene.geo4d.last_summary)
"""
)


@pytest.mark.slow
def test_environment_from_the_real_pinned_wheels_runs_a_reconstruction(extension_zip, tmp_path):
    """The pinned worker packages (this machine's pip configuration downloads them, from its local mirrors)
    served as a local index; the installed extension sets up its environment from it, then reconstructs a
    strip with the tiny model in a worker that runs in that environment."""
    from movie_strips import write_clip

    started = time.monotonic()
    wheels = tmp_path / "wheels"
    download = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), "-r", str(PINS_FILE)]
    subprocess.run(download, check=True, env=ORIGINAL_ENVIRONMENT, timeout=900, capture_output=True)
    downloaded = time.monotonic()
    video = write_clip(tmp_path / "clip", frames=16)
    user = tmp_path / "blender-user"
    with serve(write_simple_index(wheels, tmp_path / "index"), tmp_path / "server.log") as index:
        completed = run_blender(
            SET_UP_AND_RECONSTRUCT, str(extension_zip), index.url, "", str(video), user=user
        )
    fields = printed(completed)
    python = current_python(environment_root(user))
    assert fields["worker_python"] == str(python)
    assert fields["message"] == f"Environment ready: {python} (torch 2.13.0+cpu, CPU only)"
    assert (
        f"Worker Python 3.11.{sys.version_info.micro}: {python} | torch 2.13.0+cpu (CPU build)"
        in fields["report"]
    )
    assert "Model tiny loads: " in fields["report"]
    assert f"Starting the Geo4D worker: {python} -m geo4d.core.worker" in completed.stderr
    assert fields["summary"].startswith("16 frames (5-20)")
    print(
        f"download {downloaded - started:.0f} s, set-up and reconstruction {time.monotonic() - downloaded:.0f} s"
    )

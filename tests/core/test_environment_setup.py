"""Set Up GPU Environment's engine: real venvs made with real pip from a real local index or wheel folder."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from package_index import clear_pip_configuration, serve, write_simple_index, write_wheel

from geo4d.core.environment_build import pip_stage, start_build
from geo4d.core.environment_setup import (
    SLOTS,
    TORCH_INDEX,
    Machine,
    PackageSource,
    SetupPlan,
    current_python,
    detect_machine,
    pinned_requirements,
    plan_setup,
    torch_index,
    write_marker,
)
from geo4d.core.errors import Geo4DError
from geo4d.core.worker.parent import worker_launch

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180.0
FIRST = ("geo4d-probe-a==1.0",)
SECOND = ("geo4d-probe-a==2.0",)


@pytest.fixture(autouse=True)
def _pip_without_configuration(monkeypatch):
    clear_pip_configuration(monkeypatch)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    """probe-a 1.0 and 2.0 (both need probe-b) and probe-b 1.0, as wheel files."""
    folder = tmp_path_factory.mktemp("wheels")
    write_wheel(folder, "geo4d-probe-a", "1.0", ["geo4d-probe-b"])
    write_wheel(folder, "geo4d-probe-a", "2.0", ["geo4d-probe-b"])
    write_wheel(folder, "geo4d-probe-b", "1.0")
    return folder


@pytest.fixture(scope="module")
def index(wheels, tmp_path_factory):
    folder = tmp_path_factory.mktemp("index")
    with serve(write_simple_index(wheels, folder / "simple"), folder / "server.log") as served:
        yield served


def plan(root: Path, url: str, requirements: tuple[str, ...], **fields) -> SetupPlan:
    return SetupPlan(root, PackageSource(index_url=url), requirements, **fields)


def offline_plan(root: Path, folder: Path, requirements: tuple[str, ...]) -> SetupPlan:
    return dataclasses.replace(
        plan_setup(root, False, wheel_folder=str(folder), requirements=requirements), space_needed=0
    )


def imported_version(python: Path | str, module: str = "geo4d_probe_a") -> str:
    completed = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__version__)"], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


@pytest.fixture(scope="module")
def built(index, tmp_path_factory):
    """An environment folder set up from the index with probe-a 1.0 (made once): (root, the finished run,
    the stages seen while it ran)."""
    root = tmp_path_factory.mktemp("built") / "python"
    with pytest.MonkeyPatch.context() as patch:
        clear_pip_configuration(patch)
        build = start_build(plan(root, index.url, FIRST))
        stages = []
        while not build.finished:
            build.poll()
            stages.append(build.stage)
            time.sleep(0.01)
    assert build.state == "done", build.error
    return root, build, stages


@pytest.fixture(scope="module")
def unfinished_slot(tmp_path_factory) -> Path:
    """A venv as an unfinished set-up leaves it in its staging slot (made once; copied into tests)."""
    slot = tmp_path_factory.mktemp("unfinished") / "slot"
    subprocess.run([sys.executable, "-m", "venv", str(slot)], check=True)
    write_marker(slot, SECOND, ready=False)
    return slot


@pytest.fixture
def earlier(built, unfinished_slot, tmp_path) -> tuple[Path, Path]:
    """A copy of the built environment folder with an unfinished staging slot: (root, the python in use).

    (Copies, so that each test starts from the same state without making venvs, the slow part of a set-up.)
    """
    root = tmp_path / "python"
    shutil.copytree(built[0], root, symlinks=True)
    python = current_python(root)
    staging = next(root / name for name in SLOTS if name != python.parent.parent.name)
    shutil.copytree(unfinished_slot, staging, symlinks=True)
    assert imported_version(python) == "1.0"
    return root, python


def test_environment_from_the_index_imports_its_packages(built, index):
    root, build, stages = built
    assert Path(build.python) == current_python(root)
    assert imported_version(build.python) == "1.0"
    assert imported_version(build.python, "geo4d_probe_b") == "1.0"  # a dependency, found on the index
    assert build.versions == {"geo4d_probe_a": "1.0"}
    assert stages[0] == "Creating the environment" and stages[-1] == "Environment ready"
    assert "Checking packages" in stages
    assert build.fraction == 1.0
    assert "GET /geo4d-probe-a/ HTTP/1.1" in index.requests()
    assert "Successfully installed geo4d-probe-a-1.0 geo4d-probe-b-1.0" in (root / "setup.log").read_text()


def test_pip_lines_become_progress_stages():
    assert pip_stage("Collecting geo4d-probe-b (from geo4d-probe-a==1.0)") == (
        "Collecting geo4d-probe-b",
        True,
    )
    assert pip_stage("  Downloading http://127.0.0.1:1/a/torch-2.13.0.whl (1.1 kB)") == (
        "Downloading http://127.0.0.1:1/a/torch-2.13.0.whl",
        False,
    )
    assert pip_stage("Requirement already satisfied: numpy==1.26.4 in ./lib") == (
        "Already installed: numpy==1.26.4",
        True,
    )
    assert pip_stage("Installing collected packages: b, a") == ("Installing b, a", False)
    assert pip_stage("Looking in indexes: http://127.0.0.1:1/") is None


def test_offline_from_a_wheel_folder_touches_no_index(earlier, wheels):
    root, python = earlier
    build = start_build(offline_plan(root, wheels, SECOND)).wait(TIMEOUT)
    assert build.state == "done", build.error
    assert imported_version(build.python) == "2.0"
    assert f"--no-index --find-links {wheels} geo4d-probe-a==2.0" in (root / "setup.log").read_text()


def test_rerun_with_the_same_packages_only_checks_the_environment(earlier, wheels):
    root, python = earlier
    build = start_build(offline_plan(root, wheels, FIRST)).wait(TIMEOUT)
    assert build.state == "done", build.error
    assert current_python(root) == python
    assert "pip install" not in (root / "setup.log").read_text()


def test_cancelled_setup_leaves_the_earlier_environment_and_resumes(earlier, index):
    root, python = earlier
    build = start_build(plan(root, index.url, SECOND))
    pip = build._process
    assert build.stage == "Installing packages" and pip.poll() is None
    build.cancel()
    assert build.state == "cancelled"
    assert build.error == "Set-up cancelled; the environment in use is unchanged (set up again to resume)."
    assert pip.poll() == -signal.SIGKILL  # pip was stopped, not left running
    assert current_python(root) == python and imported_version(python) == "1.0"

    resumed = start_build(plan(root, index.url, SECOND)).wait(TIMEOUT)
    assert resumed.state == "done", resumed.error
    assert "-m venv" not in (root / "setup.log").read_text()  # the staging venv was reused
    assert imported_version(resumed.python) == "2.0"
    assert current_python(root) == Path(resumed.python) != python
    assert not python.parent.parent.exists()  # the earlier slot is removed once the new one is in use


def test_missing_package_leaves_the_earlier_environment_with_one_line(earlier, index):
    root, python = earlier
    build = start_build(plan(root, index.url, ("geo4d-probe-missing==1.0",))).wait(TIMEOUT)
    assert build.state == "error"
    assert build.error == (
        f"The package index {index.url} has no geo4d-probe-missing==1.0 for this Python and system: check "
        f"the index or use a wheel folder. Log: {root / 'setup.log'}"
    )
    assert current_python(root) == python and imported_version(python) == "1.0"


def test_a_file_that_is_not_a_wheel_is_named(earlier, tmp_path):
    root, python = earlier
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "geo4d_probe_a-2.0-py3-none-any.whl").write_bytes(b"<html>Sign in to download</html>")
    build = start_build(offline_plan(root, folder, SECOND)).wait(TIMEOUT)
    assert build.state == "error" and "\n" not in build.error
    assert build.error.startswith(f"The wheel folder {folder} holds a file that is not a usable wheel")
    assert current_python(root) == python and imported_version(python) == "1.0"


def test_online_access_off_refuses_before_contacting_the_index(index, tmp_path):
    asked = len(index.requests())
    with pytest.raises(Geo4DError, match=r"^Online access is off, so nothing can be downloaded: allow it"):
        plan_setup(tmp_path / "python", False, index_url=index.url, requirements=FIRST)
    assert len(index.requests()) == asked
    assert not (tmp_path / "python").exists()


def test_no_usable_python_and_no_space_are_refused_before_anything_is_made(tmp_path):
    root = tmp_path / "python"
    missing = str(tmp_path / "no-python")
    with pytest.raises(
        Geo4DError, match=r"^No usable Python 3.11 or newer with venv was found \(tried .*no-python"
    ):
        start_build(plan(root, "", FIRST, pythons=(missing,)))
    with pytest.raises(
        Geo4DError, match=r"^Not enough disk space: [\d.]+ GB free in .*, the environment needs"
    ):
        start_build(plan(root, "", FIRST, space_needed=2**62))
    assert current_python(root) is None


def fake_nvidia_smi(folder: Path, script: str, monkeypatch) -> None:
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{script}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.skipif(os.name != "posix", reason="the stand-in nvidia-smi is a shell script")
def test_the_driver_nvidia_smi_reports_chooses_the_cuda_build(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path / "driver", "echo 580.65.06", monkeypatch)
    machine = detect_machine()
    assert machine.driver == "580.65.06"
    assert torch_index(machine, "auto") == TORCH_INDEX.format(build="cu130")
    assert torch_index(Machine("Windows", "535.104.05"), "auto") == TORCH_INDEX.format(build="cu126")
    assert torch_index(Machine("Linux", "535.104.05"), "cpu") == TORCH_INDEX.format(build="cpu")
    assert torch_index(Machine("Darwin"), "auto") is None  # macOS: the registry's default build
    with pytest.raises(Geo4DError, match=r"^The NVIDIA driver 470.82 is too old for torch's CUDA builds"):
        torch_index(Machine("Linux", "470.82"), "auto")


@pytest.mark.skipif(os.name != "posix", reason="the stand-in nvidia-smi is a shell script")
def test_a_broken_driver_is_one_line(tmp_path, monkeypatch):
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    fake_nvidia_smi(tmp_path / "driver", f'echo "{message}"; exit 9', monkeypatch)
    machine = detect_machine()
    assert machine.driver is None
    with pytest.raises(Geo4DError) as raised:
        plan_setup(tmp_path / "python", True, machine=machine)
    assert str(raised.value) == (
        f"No working NVIDIA driver found (nvidia-smi failed: {message}): install or repair the NVIDIA "
        "driver and set up again, or choose Torch Build 'CPU'."
    )


def test_the_default_packages_are_the_pinned_ones_the_tests_run(tmp_path):
    pins = pinned_requirements()
    assert "-r core/worker_requirements.txt" in (ROOT / "requirements.txt").read_text().splitlines()
    assert [line.split("==")[0] for line in pins] == [
        "numpy",
        "torch",
        "diffusers",
        "av",
        "safetensors",
        "einops",
    ]
    for line in pins:
        name, version = line.split("==")
        assert importlib.metadata.version(name).split("+")[0] == version
    cuda = plan_setup(tmp_path, True, machine=Machine("Linux", "580.65.06"))
    assert cuda.requirements == pins and cuda.require_cuda
    assert cuda.source.pip_arguments() == ["--extra-index-url", TORCH_INDEX.format(build="cu130")]
    assert plan_setup(tmp_path, True, machine=Machine("Darwin")).source.pip_arguments() == []
    mirror = plan_setup(tmp_path, True, index_url="https://mirror.example/simple", machine=Machine("Linux"))
    assert mirror.source.pip_arguments() == [
        "--index-url",
        "https://mirror.example/simple",
    ]  # no driver asked
    assert sys.executable in cuda.pythons


def test_the_worker_in_a_new_environment_sees_only_its_packages(built):
    """A venv's python links to the interpreter it was made from (here the one running the tests, in
    Blender Blender's own): the worker there must not get this process's packages on its path."""
    python = current_python(built[0])
    assert python.resolve() == Path(sys.executable).resolve()  # the same interpreter file
    command, environment = worker_launch(str(python))
    assert command[0] == str(python)
    site_packages = [entry for entry in sys.path if entry.endswith("site-packages")]
    assert not set(environment["PYTHONPATH"].split(os.pathsep)) & set(site_packages)
    assert worker_launch(sys.executable)[1]["PYTHONPATH"].split(os.pathsep)[-1] in sys.path


@pytest.mark.parametrize("kind", ["folder", "file", "link"])
def test_a_slot_holding_what_geo4d_did_not_make_is_refused_and_kept(tmp_path, kind):
    root = tmp_path / "python"
    root.mkdir()
    slot = root / SLOTS[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("a user's notes")
    if kind == "folder":
        slot.mkdir()
        (slot / "notes.txt").write_text("a user's notes")
    elif kind == "file":
        slot.write_text("a user's notes")
    else:
        slot.symlink_to(elsewhere, target_is_directory=True)
    before = {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(
        Geo4DError, match=rf"^{slot} is in the way of the set-up: it is not an environment Geo4D made"
    ):
        start_build(plan(root, "", FIRST, space_needed=0))
    assert {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
    assert slot.is_symlink() == (kind == "link")

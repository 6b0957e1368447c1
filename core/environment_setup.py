"""What Set Up GPU Environment installs and where: the plan (packages, torch build, source) and its checks.

No bpy, no torch: the Blender side (operators/environment_setup.py) makes a plan with plan_setup() and runs it
with core.environment_build.EnvironmentBuild. Every refusal is a Geo4DError of one line that says what to do.

Layout of the environment folder (the extension's user folder on the Blender side):
    env-a/, env-b/   two slots; a set-up builds into the one not in use (its "staging" slot)
    current          the name of the slot in use; written only after the new slot passed its check
    setup.log        everything the last set-up's subprocesses printed
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Geo4DError

logger = logging.getLogger(__name__)

# The worker's packages at the versions the tests run; requirements.txt includes the same file.
PINS_FILE = Path(__file__).with_name("worker_requirements.txt")
MIN_PYTHON = (3, 11)
# PyTorch's own package index, one per build ("cpu", "cu126", ...).
TORCH_INDEX = "https://download.pytorch.org/whl/{build}"
# (oldest NVIDIA driver major version, the CUDA build of torch it runs), newest build first.
CUDA_BUILDS = ((580, "cu130"), (525, "cu126"))
TORCH_BUILDS = ("auto", "cpu")
GIGABYTE = 2**30
# Free disk space a set-up asks for: a CUDA torch with its NVIDIA libraries takes about 6 GB installed.
SPACE_NEEDED = {"cuda": 8 * GIGABYTE, "default": 2 * GIGABYTE}
SLOTS = ("env-a", "env-b")
CURRENT_FILE = "current"
LOG_NAME = "setup.log"
# Written into a slot once its venv exists; "ready" once its packages passed the check.
MARKER_NAME = "geo4d-environment.json"
NVIDIA_SMI_TIMEOUT = 20.0
PROBE_TIMEOUT = 30.0
# Checks that a python can make a venv (venv and ensurepip importable) and says its version.
PROBE_SCRIPT = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"


def pinned_requirements(path: Path = PINS_FILE) -> tuple[str, ...]:
    """The requirement lines of a pins file ("torch==2.13.0", ...), without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line)


def module_name(requirement: str) -> str:
    """The module a requirement's package is imported as: its name with '-' as '_' ("geo4d-probe==1" -> geo4d_probe)."""
    return re.split(r"[<>=!~;\[\s]", requirement, maxsplit=1)[0].strip().lower().replace("-", "_")


@dataclass(frozen=True)
class PackageSource:
    """Where pip finds the packages: an index (online) or a folder of wheels (offline, no index at all).

    index_url: a PEP 503 simple index ("" = the index pip is configured with, normally PyPI).
    extra_index_urls: more indexes, such as PyTorch's for a CUDA build. wheel_folder: offline when set.
    """

    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    wheel_folder: str = ""

    @property
    def online(self) -> bool:
        return not self.wheel_folder

    def pip_arguments(self) -> list[str]:
        if not self.online:
            return ["--no-index", "--find-links", self.wheel_folder]
        arguments = ["--index-url", self.index_url] if self.index_url else []
        for url in self.extra_index_urls:
            arguments += ["--extra-index-url", url]
        return arguments

    def describe(self) -> str:
        if not self.online:
            return f"the wheel folder {self.wheel_folder}"
        return f"the package index {self.index_url}" if self.index_url else "the package index (PyPI)"


@dataclass(frozen=True)
class SetupPlan:
    """One set-up: the environment folder, the packages, their source, the pythons to build from.

    requirements: pip requirement lines (default: the pinned worker packages). pythons: candidate base
    interpreters, the first usable one (3.11+, with venv) wins. space_needed: free bytes asked for.
    require_cuda: the new torch must see a CUDA GPU (a CUDA build chosen for this machine's driver).
    """

    root: Path
    source: PackageSource = PackageSource()
    requirements: tuple[str, ...] = field(default_factory=pinned_requirements)
    pythons: tuple[str, ...] = (sys.executable,)
    space_needed: int = SPACE_NEEDED["default"]
    require_cuda: bool = False

    def __post_init__(self) -> None:
        if not self.requirements or not all(isinstance(line, str) and line for line in self.requirements):
            raise ValueError(f"requirements must be non-empty requirement lines, got {self.requirements!r}")
        if not self.pythons:
            raise ValueError("pythons must name at least one interpreter to build the environment from")
        if not isinstance(self.space_needed, int) or self.space_needed < 0:
            raise ValueError(f"space_needed must be bytes >= 0, got {self.space_needed!r}")

    @property
    def log(self) -> Path:
        return self.root / LOG_NAME

    def modules(self) -> list[str]:
        return [module_name(line) for line in self.requirements]


@dataclass(frozen=True)
class Machine:
    """What decides the torch build: the system (platform.system()) and the NVIDIA driver, if any.

    driver: the version nvidia-smi reports ("580.65.06"), None without one; driver_problem: why
    nvidia-smi failed when it exists but did not answer.
    """

    system: str
    driver: str | None = None
    driver_problem: str = ""


def detect_machine() -> Machine:
    """This machine: its system and the NVIDIA driver that `nvidia-smi` reports (it ships with the driver)."""
    system = platform.system()
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Machine(system)
    command = [smi, "--query-gpu=driver_version", "--format=csv,noheader"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Machine(system, driver_problem=f"nvidia-smi did not answer: {error}")
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines or not re.match(r"\d+\.", lines[0].strip()):
        said = (completed.stderr or completed.stdout).strip().splitlines()
        return Machine(system, driver_problem=f"nvidia-smi failed: {said[-1] if said else 'no output'}")
    return Machine(system, driver=lines[0].strip())


def torch_index(machine: Machine, build: str) -> str | None:
    """PyTorch's index with the torch build for `machine` (None: the registry's default build, macOS).

    build "auto": the CUDA build the NVIDIA driver runs on Linux and Windows (refused without a driver);
    "cpu": the CPU build (PyPI's Linux torch would be a CUDA build of several GB).
    """
    if build not in TORCH_BUILDS:
        raise ValueError(f"build must be one of {', '.join(TORCH_BUILDS)}, got {build!r}")
    if machine.system == "Darwin":
        return None
    if build == "cpu":
        return TORCH_INDEX.format(build="cpu")
    if machine.driver is None:
        why = machine.driver_problem or "nvidia-smi is not installed"
        raise Geo4DError(
            f"No working NVIDIA driver found ({why}): install or repair the NVIDIA driver and set up again, "
            "or choose Torch Build 'CPU'."
        )
    major = int(machine.driver.split(".")[0])
    for oldest, cuda in CUDA_BUILDS:
        if major >= oldest:
            return TORCH_INDEX.format(build=cuda)
    raise Geo4DError(
        f"The NVIDIA driver {machine.driver} is too old for torch's CUDA builds (they need "
        f"{CUDA_BUILDS[-1][0]} or newer): update the driver and set up again, or choose Torch Build 'CPU'."
    )


def default_pythons() -> tuple[str, ...]:
    """The interpreters to try: this process's (Blender's own inside Blender), then python3.x on PATH."""
    found = [sys.executable]
    for name in ("python3.13", "python3.12", "python3.11", "python3"):
        path = shutil.which(name)
        if path and path not in found:
            found.append(path)
    return tuple(found)


def plan_setup(
    root: Path,
    online_access: bool,
    build: str = "auto",
    wheel_folder: str = "",
    index_url: str = "",
    requirements: tuple[str, ...] | None = None,
    machine: Machine | None = None,
) -> SetupPlan:
    """The plan of a set-up into `root`: offline from `wheel_folder`, else online (refused without online_access).

    index_url: "" = pip's configured index (PyPI) plus PyTorch's for the torch build that fits the machine;
    else that index alone (a studio's mirror). requirements: None = the pinned worker packages.
    """
    requirements = requirements or pinned_requirements()
    if wheel_folder:
        folder = Path(wheel_folder)
        if not folder.is_dir() or not any(folder.glob("*.whl")):
            raise Geo4DError(
                f"The wheel folder {wheel_folder} holds no .whl files: download the wheels there first "
                "(see the add-on's GPU set-up guide), or clear 'Wheel Folder' to install online."
            )
        return SetupPlan(root, PackageSource(wheel_folder=str(folder)), requirements, default_pythons())
    if not online_access:
        raise Geo4DError(
            "Online access is off, so nothing can be downloaded: allow it in Preferences > System > Network "
            "(Allow Online Access), or choose a 'Wheel Folder' of downloaded wheels to install offline."
        )
    if index_url:  # a mirror of the user's own: it holds the torch build they want
        return SetupPlan(root, PackageSource(index_url), requirements, default_pythons())
    machine = machine or detect_machine()
    torch_url = torch_index(machine, build) if any(module_name(r) == "torch" for r in requirements) else None
    cuda = torch_url is not None and "/cu" in torch_url
    source = PackageSource(extra_index_urls=(torch_url,) if torch_url else ())
    space = SPACE_NEEDED["cuda" if cuda else "default"]
    return SetupPlan(root, source, requirements, default_pythons(), space, require_cuda=cuda)


def find_base_python(candidates: tuple[str, ...]) -> str:
    """The first candidate that runs, is Python 3.11 or newer and can make a venv; refused when none is."""
    tried = []
    for candidate in candidates:
        try:
            completed = subprocess.run(
                [candidate, "-c", PROBE_SCRIPT], capture_output=True, text=True, timeout=PROBE_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            tried.append(f"{candidate} ({type(error).__name__})")
            continue
        said = (completed.stdout.strip() or completed.stderr.strip()).splitlines()
        if completed.returncode != 0:
            tried.append(f"{candidate} ({said[-1] if said else 'failed'})")
            continue
        if tuple(int(part) for part in said[-1].split(".")) >= MIN_PYTHON:
            return candidate
        tried.append(f"{candidate} (Python {said[-1]})")
    version = ".".join(map(str, MIN_PYTHON))
    raise Geo4DError(
        f"No usable Python {version} or newer with venv was found (tried {'; '.join(tried)}): install "
        f"Python {version}+ from python.org and set up again."
    )


def check_free_space(root: Path, needed: int) -> None:
    """Refuse before anything is downloaded when the disk of `root` has less than `needed` bytes free."""
    free = shutil.disk_usage(root).free
    if free < needed:
        raise Geo4DError(
            f"Not enough disk space: {free / GIGABYTE:.1f} GB free in {root}, the environment needs about "
            f"{needed / GIGABYTE:.1f} GB. Free some space and set up again."
        )


def environment_python(slot: Path) -> Path:
    """The python of the venv in `slot`."""
    return slot / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def read_marker(slot: Path) -> dict | None:
    """The slot's marker ({"requirements", "ready"}), None when the slot holds no venv of ours."""
    try:
        return json.loads((slot / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_marker(slot: Path, requirements: tuple[str, ...], ready: bool) -> None:
    text = json.dumps({"requirements": list(requirements), "ready": ready}, indent=1)
    (slot / MARKER_NAME).write_text(text, encoding="utf-8")


def current_slot(root: Path) -> Path | None:
    """The slot in use: the one `current` names, when it is ready; None before the first set-up."""
    try:
        name = (root / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    slot = root / name
    marker = read_marker(slot) if name in SLOTS else None
    return slot if marker and marker.get("ready") else None


def current_python(root: Path) -> Path | None:
    """The python of the environment in use, None before the first successful set-up."""
    slot = current_slot(root)
    return environment_python(slot) if slot is not None else None

"""A real package index for the set-up tests: small wheels written here, a PEP 503 simple index of them,
served by `python -m http.server` on 127.0.0.1 (its request log shows what pip asked for)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def write_wheel(folder: Path, name: str, version: str, requires: Sequence[str] = ()) -> Path:
    """A pure-Python wheel of package `name` (module name with '_'), whose __version__ is `version`."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'"""Test package {name}."""\n__version__ = "{version}"\n',
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: geo4d-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def project_name(wheel: Path) -> str:
    """PEP 503's normalised project name of a wheel file."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def write_simple_index(wheels: Path, index: Path) -> Path:
    """A PEP 503 simple index in `index` of every wheel in `wheels`: /<project>/index.html links its files."""
    projects: dict[str, list[Path]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        projects.setdefault(project_name(wheel), []).append(wheel)
    for project, files in projects.items():
        (index / project).mkdir(parents=True, exist_ok=True)
        links = []
        for wheel in files:
            try:
                os.link(wheel, index / project / wheel.name)  # torch's wheel is large: link, not copy
            except OSError:
                shutil.copy2(wheel, index / project / wheel.name)
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            links.append(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a><br>')
        (index / project / "index.html").write_text(
            "<html><body>\n" + "\n".join(links) + "\n</body></html>\n"
        )
    listing = "".join(f'<a href="{project}/">{project}</a><br>\n' for project in sorted(projects))
    (index / "index.html").write_text(f"<html><body>\n{listing}</body></html>\n")
    return index


@dataclass
class ServedIndex:
    url: str
    request_log: Path

    def requests(self) -> list[str]:
        """The request lines the server logged so far ("GET /geo4d-probe-a/ HTTP/1.1", ...)."""
        return re.findall(r'"([A-Z]+ \S+ HTTP/[\d.]+)"', self.request_log.read_text())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(folder: Path, log: Path) -> Iterator[ServedIndex]:
    """`python -m http.server` for `folder` on a free port of 127.0.0.1, stopped afterwards."""
    port = free_port()
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(folder),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.05)
            yield ServedIndex(f"http://127.0.0.1:{port}/", log)
        finally:
            server.terminate()
            server.wait()


def clear_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip as on a machine without pip configuration: no config files, no PIP_* variables (this machine's
    point at local mirrors, which would answer instead of the test's index)."""
    for name in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)

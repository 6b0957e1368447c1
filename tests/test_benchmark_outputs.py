"""The benchmark scripts' report files: a file a user named is refused before the work, never overwritten."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "/"
        for path in sorted(folder.rglob("*"))
    }


def run_script(name: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


# The quickest settings of each script: without the refusal they run (and then write the file).
SCRIPTS = {
    "gpu_check.py": ("--dry-run", "--output"),
    "quality.py": ("--seeds", "101", "--frames", "16", "--json"),
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_report_path_holding_a_users_file_is_refused_before_the_work(tmp_path, script):
    (tmp_path / "report.json").write_text('{"figures": "a user\'s own measurements"}')
    before = hashes(tmp_path)
    done = run_script(script, *SCRIPTS[script], "report.json", cwd=tmp_path)
    assert done.returncode in (1, 2)
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].endswith(
        "report.json exists and is not a "
        f"{'GPU check' if script == 'gpu_check.py' else 'quality benchmark'} report Geo4D wrote; Geo4D never "
        "overwrites what it did not write. Choose a new file name, or move that file."
    ), done.stderr
    assert hashes(tmp_path) == before


def test_a_report_in_a_missing_folder_is_refused_before_the_work(tmp_path):
    done = run_script("quality.py", *SCRIPTS["quality.py"], "absent/report.json", cwd=tmp_path)
    assert done.returncode in (1, 2)
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("The folder absent does not exist. Create it or choose another path.")
    )
    assert list(tmp_path.iterdir()) == []

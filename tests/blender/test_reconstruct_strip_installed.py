"""The extension zip installed from disk reconstructs a strip: its own worker, its own result cache."""

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from movie_strips import write_clip

ROOT = Path(__file__).resolve().parents[2]

INSTALL_AND_RECONSTRUCT = """
import logging
import sys
import bpy

logging.basicConfig(level=logging.INFO)

zip_path, video, model = sys.argv[1:4]
bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True
) == {"FINISHED"}
print("module", bpy.types.GEO4D_OT_reconstruct_strip.__module__)
from bl_ext.user_default.geo4d.blender_compat import top_level_strips

scene = bpy.context.scene
strips = top_level_strips(scene.sequence_editor_create())
strip = strips.new_movie("shot", video, channel=1, frame_start=5)
scene.sequence_editor.active_strip = strip
assert bpy.ops.geo4d.reconstruct_strip(model=model, steps=1, input_size=(64, 64)) == {"FINISHED"}
camera = [obj for obj in bpy.data.objects if obj.get("geo4d_role") == "camera"][0]
print("result", camera["geo4d_result"])
print("summary", scene.geo4d.last_summary)
"""


def test_installed_extension_reconstructs_a_strip_into_its_cache(tmp_path, tiny_model):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--output-dir", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    (zip_path,) = (tmp_path / "dist").glob("*.zip")
    video = write_clip(tmp_path / "clip", frames=16)
    user = tmp_path / "blender-user"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(INSTALL_AND_RECONSTRUCT),
            str(zip_path),
            str(video),
            tiny_model,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, BLENDER_USER_RESOURCES=str(user)),
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "module bl_ext.user_default.geo4d.operators.reconstruct_strip" in completed.stdout
    lines = dict(line.split(" ", 1) for line in completed.stdout.splitlines() if " " in line)
    cache = user / "extensions" / ".user" / "user_default" / "geo4d" / "results"
    assert Path(lines["result"]).is_relative_to(cache.resolve())
    assert (Path(lines["result"]) / "reconstruction.json").is_file()
    assert lines["summary"].startswith("16 frames (5-20)")
    extension = user / "extensions" / "user_default" / "geo4d"
    assert f"runs {extension.resolve() / 'core' / 'worker' / 'child.py'}" in completed.stderr


INSTALL_AND_PROBE_WHEEL = """
import subprocess
import sys
import bpy

assert bpy.ops.extensions.package_install_files(
    filepath=sys.argv[1], repo="user_default", enable_on_install=True
) == {"FINISHED"}
from bl_ext.user_default.geo4d.core.worker.parent import worker_launch

command, environment = worker_launch()
probe = "import geo4d_wheel_probe; print('worker sees', geo4d_wheel_probe.__file__)"
print(subprocess.run([command[0], "-c", probe], env=environment, capture_output=True, text=True).stdout)
"""


def write_wheel(folder: Path, name: str = "geo4d_wheel_probe", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel (module, METADATA, WHEEL, RECORD), as pip would install it."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


def build_with_wheels(output: Path, wheels: Path) -> subprocess.CompletedProcess:
    """Run build.py as a user would, bundling the wheels of `wheels` into a zip in `output`."""
    command = [sys.executable, str(ROOT / "build.py"), "--output-dir", str(output), "--wheels", str(wheels)]
    return subprocess.run(command, capture_output=True, text=True)


def test_bundled_wheels_are_installed_with_the_extension_and_seen_by_the_worker(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels)
    completed = build_with_wheels(tmp_path / "dist", wheels)
    assert completed.returncode == 0, completed.stderr
    (zip_path,) = (tmp_path / "dist").glob("*.zip")
    with zipfile.ZipFile(zip_path) as archive:
        assert "wheels/geo4d_wheel_probe-1.0-py3-none-any.whl" in archive.namelist()
        assert (
            'wheels = ["./wheels/geo4d_wheel_probe-1.0-py3-none-any.whl"]'
            in archive.read("blender_manifest.toml").decode()
        )
    user = tmp_path / "blender-user"
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(INSTALL_AND_PROBE_WHEEL), str(zip_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, BLENDER_USER_RESOURCES=str(user)),
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (line,) = [line for line in completed.stdout.splitlines() if line.startswith("worker sees ")]
    assert Path(line.removeprefix("worker sees ")).is_relative_to(user / "extensions")


def test_build_refuses_a_wheel_folder_without_wheels(tmp_path):
    completed = build_with_wheels(tmp_path / "dist", tmp_path)
    assert completed.returncode == 1 and f"No .whl files in {tmp_path}" in completed.stderr
    assert not (tmp_path / "dist").exists()

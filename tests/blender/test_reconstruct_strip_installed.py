"""The extension zip installed from disk reconstructs a strip: its own worker, its own result cache."""

import os
import subprocess
import sys
import textwrap
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
scene = bpy.context.scene
strip = scene.sequence_editor_create().strips.new_movie("shot", video, channel=1, frame_start=5)
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
    assert f"runs {extension.resolve() / 'core' / 'worker.py'}" in completed.stderr

"""The demo's Blender half: an exact result rendered through its own cameras looks like the video, and
the whole `python -m geo4d demo` run (slow) writes its scene, sheet and figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from synthetic_results import write_result

from geo4d.blender_commands.demo import RENDER_SCALE, build_blend, make_sheet, render_frames
from geo4d.core.synthetic.figures import enlarge
from geo4d.core.synthetic.quality import quality_figures


def test_ground_truth_points_render_like_the_video(tmp_path, empty_scene):
    """Exact points seen through exact cameras must reproduce the footage: the render pipeline of the sheet
    (import, streamed PLY points, Cycles on the CPU) shows the cloud where and how the video shows it."""
    folder = tmp_path / "truth"
    truth = write_result(folder, 64, 40, frames=4, seed=3)
    build_blend(folder, tmp_path / "scene.blend")
    assert (tmp_path / "scene.blend").is_file() and bpy.context.scene.camera is not None
    renders = render_frames([0, 3], tmp_path)
    for frame, render in zip([0, 3], renders, strict=True):
        video = enlarge(truth.color[frame], RENDER_SCALE).astype(np.int16)
        assert render.shape == video.shape
        covered = np.abs(render.astype(np.int16) - render[0, 0]).sum(-1) > 0
        sky = enlarge(truth.depth[frame] > 0, RENDER_SCALE)
        assert covered[sky].mean() > 0.9  # the cloud fills the frame where the scene has geometry
        difference = np.abs(render.astype(np.int16) - video)[sky]
        assert np.median(difference) < 20, np.median(difference)
    sheet = make_sheet(truth, truth, renders, [0, 3], quality_figures(truth, truth))
    assert sheet.dtype == np.uint8 and sheet.shape[1] >= 2 * 64 * RENDER_SCALE


def random_tiny_network(path: Path) -> Path:
    """A random-weight tiny network in the shipped file format."""
    import torch

    from geo4d.core.network.config import NetworkConfig
    from geo4d.core.network.loading import random_network
    from geo4d.core.network.network_file import write_network_file

    model = random_network(NetworkConfig.tiny(), 0)
    modules = {"unet": model.unet, "vae": model.vae, "pointmap_vae": model.pointmap_vae}
    write_network_file(path, modules, model.context, model.config, torch.float32)
    return path


@pytest.mark.slow
def test_demo_command_runs_end_to_end(tmp_path):
    """`python -m geo4d demo` on a short clip (with the shipped model when installed, else a random one)."""
    from geo4d.core.model_choice import TINY_WEIGHTS

    arguments = ["--frames", "20", "--steps", "2"]
    if not TINY_WEIGHTS.is_file():
        arguments += ["--model", str(random_tiny_network(tmp_path / "tiny.safetensors"))]
    output = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "geo4d", "demo", "-o", str(output), *arguments],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("scene.blend", "sheet.png", "metrics.json", "result/reconstruction.json", "video/video.mp4"):
        assert (output / name).is_file(), name
    figures = json.loads((output / "metrics.json").read_text())["figures"]
    assert set(figures) >= {"abs_rel", "focal_error", "ate_fraction", "rpe_rotation_deg"}
    assert "AbsRel" in done.stdout and "ATE" in done.stdout


def test_an_earlier_demo_folder_is_recognised_and_a_users_scene_is_not(tmp_path):
    """The demo's output-folder layout: its results and, once metrics.json carries the demo's marker,
    the scene and sheet beside them; a scene.blend without that marker is the user's."""
    from geo4d.blender_commands.demo import DEMO_FORMAT, DEMO_LAYOUT
    from geo4d.core.errors import Geo4DError
    from geo4d.core.output_folder import check_output_folder

    folder = tmp_path / "demo"
    write_result(folder / "video", 16, 16, frames=2, seed=1)
    write_result(folder / "result", 16, 16, frames=2, seed=2)
    check_output_folder(folder, DEMO_LAYOUT)  # an unfinished demo: its two results only
    (folder / "scene.blend").write_bytes(b"BLENDER the user's scene")
    with pytest.raises(Geo4DError, match=r"did not write \(scene.blend\)"):
        check_output_folder(folder, DEMO_LAYOUT)
    (folder / "metrics.json").write_text(json.dumps({"format": DEMO_FORMAT}))
    (folder / "sheet.png").write_bytes(b"png")
    check_output_folder(folder, DEMO_LAYOUT)
    (folder / "result" / "notes.txt").write_text("mine")
    with pytest.raises(Geo4DError, match=r"its result/ is not a Geo4D result \(notes.txt\)"):
        check_output_folder(folder, DEMO_LAYOUT)

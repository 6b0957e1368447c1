"""The reconstruct command's terminal side: the progress bar's lines and stage times, the closing summary."""

from __future__ import annotations

import io

import pytest

from geo4d.core.align import align_windows
from geo4d.core.commands.reconstruct import ProgressBar, summary
from geo4d.core.evaluation.metrics import path_length
from geo4d.core.progress import ProgressEvent
from geo4d.core.result import Reconstruction
from geo4d.core.synthetic.render import SceneConfig, render_scene, write_synthetic
from geo4d.core.synthetic.simulated_predictions import PredictionNoise, simulate_window_predictions
from geo4d.core.windows import plan_windows


def test_progress_bar_writes_stage_lines_and_times_them():
    stream = io.StringIO()  # not a terminal: a line per tenth of a stage, none for the steps in between
    bar = ProgressBar(stream)
    for done in range(3):
        for step in range(5):
            bar(ProgressEvent("predict", done, 2, 1.0 + done, f"window {done}, step {step}"))
    bar(ProgressEvent("align", 0, 1, 0.0))
    bar(ProgressEvent("align", 1, 1, 0.5))
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("predict  [....") and "0/2" in lines[0] and "step 0" in lines[0]
    assert "1/2" in lines[1] and "s left" in lines[1]
    assert lines[2].startswith("predict  [####") and "2/2" in lines[2] and "window 2, step 0" in lines[2]
    assert "s left" not in lines[2] and lines[3].startswith("align ")
    assert bar.seconds("predict") >= 0 and bar.seconds("save") is None


def test_progress_bar_without_a_terminal_shows_life_every_few_seconds_of_a_long_step():
    stream = io.StringIO()
    now = 0.0
    bar = ProgressBar(stream, clock=lambda: now)
    for step in range(1000):  # 1000 DDIM steps of one window, 0.1 s each: the stage fraction never moves
        now = 0.1 * step
        bar(ProgressEvent("predict", 0, 3, now, f"window 1 of 3, DDIM step {step + 1}/1000"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20  # the first, then one per LOG_INTERVAL (5 s) of the 100 s
    assert "DDIM step 1/1000" in lines[0] and "DDIM step 51/1000" in lines[1]
    assert "DDIM step 951/1000" in lines[-1]
    now += 0.1
    bar(ProgressEvent("predict", 1, 3, now, "window 2 of 3"))  # a new tenth is written at once
    assert "1/3" in stream.getvalue().splitlines()[-1]
    assert bar.seconds("predict") == pytest.approx(100.0)


def test_summary_reports_frames_focal_path_and_warnings(tmp_path):
    folder = write_synthetic(tmp_path / "scene", SceneConfig(frames=5, width=64, height=40, seed=2))
    bar = ProgressBar(io.StringIO())
    bar(ProgressEvent("save", 0, 1, 0.0))
    text = summary(folder, bar, 12.5)
    truth = Reconstruction.load(folder)
    assert "frames     5 (source frames 0-4) at 64x40" in text
    assert f"focal      {truth.intrinsics.fx:.1f} px" in text
    assert f"path       {path_length(truth.camera_to_world):.3f}" in text
    assert "save 0.0 s; total 12.5 s" in text and "warnings   none" in text
    assert len(text.splitlines()) < 24


def test_summary_of_an_untrustworthy_alignment_shows_its_confidence_and_warnings(tmp_path):
    """Windows of noise: the summary never says 'warnings none', and it shows the low confidence."""
    truth = render_scene(SceneConfig(frames=20, width=48, height=32, seed=3))
    noise = PredictionNoise(garbage_windows=(0, 1, 2))
    result = align_windows(simulate_window_predictions(truth, plan_windows(20), noise), truth.color)
    text = summary(result.save(tmp_path / "result"), ProgressBar(io.StringIO()), 1.0)
    assert "warnings   none" not in text and f"warnings   {len(result.warnings)}" in text
    lowest = result.frame_confidence.min()
    assert f"confidence {lowest:.2f} lowest (frame {result.frame_confidence.argmin()})" in text
    assert "frames under 0.5" in text or "frame under 0.5" in text

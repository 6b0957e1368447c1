"""Depth and camera metrics on hand-computed cases, and the `metrics` command on two result folders."""

import json
import math

import numpy as np
import pytest

from geo4d.__main__ import COMMANDS
from geo4d.core.cli import main as cli_main
from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.metrics import (
    camera_metrics,
    depth_metrics,
    fit_scale_shift_l1,
    rotation_angle_deg,
    umeyama,
)
from geo4d.core.result import Intrinsics, Reconstruction


def rotation_z(degrees):
    angle = math.radians(degrees)
    return np.array(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )


def rotation_x(degrees):
    angle = math.radians(degrees)
    return np.array(
        [[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]]
    )


def circle_path(frames=12):
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = rotation_z(10 * i) @ rotation_x(3 * i)
        poses[i, :3, 3] = [math.cos(0.3 * i), math.sin(0.3 * i), 0.1 * i]
    return poses


def test_a_known_similarity_gives_zero_ate_and_rpe():
    truth = circle_path()
    world = np.eye(4)
    world[:3, :3] = rotation_x(37) @ rotation_z(-20)
    world[:3, 3] = [4, -2, 1]
    prediction = world @ truth
    prediction[:, :3, 3] *= 2.5
    result = camera_metrics(prediction, truth)
    assert result.ate == pytest.approx(0, abs=1e-9)
    assert result.rpe_translation == pytest.approx(0, abs=1e-9)
    assert result.rpe_rotation_deg == pytest.approx(0, abs=1e-5)
    assert result.scale == pytest.approx(1 / 2.5)
    assert result.path_length == pytest.approx(np.linalg.norm(np.diff(truth[:, :3, 3], axis=0), axis=1).sum())


def test_a_rotation_offset_per_step_gives_that_rpe():
    truth = circle_path()
    truth[:, :3, :3] = np.eye(3)
    prediction = truth.copy()
    prediction[:, :3, :3] = np.stack([rotation_z(2.0 * i) for i in range(len(truth))])
    result = camera_metrics(prediction, truth)
    assert result.ate == pytest.approx(0, abs=1e-9)
    assert result.rpe_rotation_deg == pytest.approx(2.0, abs=1e-6)


def test_ate_of_a_displaced_camera():
    truth = circle_path(frames=10)
    prediction = truth.copy()
    prediction[5, :3, 3] += [0, 0, 1.0]
    expected = umeyama(prediction[:, :3, 3], truth[:, :3, 3])
    aligned = expected[0] * prediction[:, :3, 3] @ expected[1].T + expected[2]
    rmse = np.sqrt(np.mean(np.sum((aligned - truth[:, :3, 3]) ** 2, axis=1)))
    assert camera_metrics(prediction, truth).ate == pytest.approx(rmse)
    assert 0 < rmse < 1.0 / math.sqrt(10)


def test_rotation_angle():
    assert rotation_angle_deg(rotation_x(33.0)) == pytest.approx(33.0)


def test_depth_scale_and_shift_are_undone():
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 10, size=(3, 8, 9))
    truth[0, 0, :3] = 0
    prediction = (truth - 0.7) / 3.0
    result = depth_metrics(prediction, truth)
    assert result.abs_rel == pytest.approx(0, abs=1e-7) and result.delta_1_25 == 1.0
    assert result.scale == pytest.approx(3.0) and result.shift == pytest.approx(0.7)
    assert result.pixels == truth.size - 3
    scale_only = depth_metrics(truth / 4.0, truth, alignment="scale")
    assert scale_only.abs_rel == pytest.approx(0, abs=1e-7) and scale_only.scale == pytest.approx(4.0)


def test_depth_metrics_without_alignment_are_hand_computable():
    truth = np.full((2, 4, 4), 2.0)
    assert depth_metrics(truth * 1.3, truth, alignment="none").abs_rel == pytest.approx(0.3)
    assert depth_metrics(truth * 1.3, truth, alignment="none").delta_1_25 == 0.0
    assert depth_metrics(truth * 1.2, truth, alignment="none").delta_1_25 == 1.0
    half = truth.copy()
    half[0] *= 1.5
    result = depth_metrics(half, truth, alignment="none")
    assert result.abs_rel == pytest.approx(0.25) and result.delta_1_25 == pytest.approx(0.5)


def test_l1_fit_ignores_outliers_and_the_depth_cap_skips_far_pixels():
    rng = np.random.default_rng(1)
    truth = rng.uniform(1, 80, size=2000)
    prediction = 0.5 * truth + 2.0
    corrupted = truth.copy()
    corrupted[:100] = rng.uniform(0, 1000, size=100)
    scale, shift = fit_scale_shift_l1(prediction, corrupted)
    assert scale == pytest.approx(2.0, rel=1e-4) and shift == pytest.approx(-4.0, abs=1e-2)
    capped = depth_metrics(prediction[None, None], truth[None, None], max_depth=70)
    assert capped.pixels == int((truth <= 70).sum())
    with pytest.raises(Geo4DError, match="No valid ground-truth"):
        depth_metrics(truth[None, None], truth[None, None], max_depth=0.5)
    with pytest.raises(ValueError, match="alignment"):
        depth_metrics(truth[None, None], truth[None, None], alignment="affine")


def test_metrics_command_compares_two_result_folders(tmp_path, capsys):
    rng = np.random.default_rng(2)
    frames, height, width = 4, 6, 8
    depth = rng.uniform(1, 5, size=(frames, height, width)).astype(np.float32)
    color = rng.integers(0, 255, size=(frames, height, width, 3), dtype=np.uint8)
    truth = Reconstruction(
        circle_path(frames), Intrinsics(7, 7, 4, 3), depth, np.ones_like(depth), color, 24.0
    )
    moved = circle_path(frames)
    moved[:, :3, 3] *= 3.0
    prediction = Reconstruction(
        moved, Intrinsics(7.7, 7.7, 4, 3), depth * 3 + 1, np.ones_like(depth), color, 24.0
    )
    truth.save(tmp_path / "truth")
    prediction.save(tmp_path / "prediction")
    assert (
        cli_main(COMMANDS, ["metrics", str(tmp_path / "prediction"), str(tmp_path / "truth"), "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["depth"]["abs_rel"] == pytest.approx(0, abs=1e-5)
    assert report["camera"]["ate"] == pytest.approx(0, abs=1e-6)
    assert report["focal_ratio"] == pytest.approx(1.1)
    assert cli_main(COMMANDS, ["metrics", str(tmp_path / "prediction"), str(tmp_path / "truth")]) == 0
    assert "AbsRel 0.0000" in capsys.readouterr().out
    assert cli_main(COMMANDS, ["metrics", str(tmp_path / "prediction"), str(tmp_path / "missing")]) == 1

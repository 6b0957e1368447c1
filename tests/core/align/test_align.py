"""Multi-modal alignment on synthetic scenes with network-like per-window predictions."""

import numpy as np
import pytest
import torch

from geo4d.core.align import AlignConfig, align_windows
from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.metrics import camera_metrics, depth_metrics
from geo4d.core.prediction import WindowPrediction
from geo4d.core.result import Reconstruction
from geo4d.core.synthetic.render import SceneConfig, render_scene
from geo4d.core.synthetic.simulated_predictions import (
    NOISE_FREE,
    PredictionNoise,
    simulate_window_predictions,
)
from geo4d.core.windows import plan_windows


@pytest.fixture(scope="module")
def truth():
    return render_scene(SceneConfig(frames=48, width=160, height=96, seed=0))


@pytest.fixture(scope="module")
def small_truth():
    return render_scene(SceneConfig(frames=28, width=48, height=32, seed=2))


def scores(result, truth):
    cameras = camera_metrics(result.camera_to_world, truth.camera_to_world)
    return {
        "focal": abs(result.intrinsics.fx / truth.intrinsics.fx - 1),
        "ate": cameras.ate / cameras.path_length,
        "rpe_rot": cameras.rpe_rotation_deg,
        "abs_rel": depth_metrics(result.depth, truth.depth).abs_rel,
    }


def aligned(truth, noise, seed=1, **config):
    predictions = simulate_window_predictions(truth, plan_windows(truth.num_frames), noise, seed=seed)
    return align_windows(predictions, truth.color, AlignConfig(**config))


def test_noise_free_predictions_are_essentially_exact(truth):
    result = aligned(truth, NOISE_FREE)
    found = scores(result, truth)
    assert found["focal"] < 1e-3 and found["ate"] < 1e-3
    assert found["rpe_rot"] < 0.01 and found["abs_rel"] < 1e-3
    assert result.warnings == []
    assert np.allclose(result.camera_to_world[0], np.eye(4))
    assert (result.intrinsics.cx, result.intrinsics.cy) == (80.0, 48.0)
    assert np.array_equal(result.color, truth.color)
    sky = truth.depth == 0
    assert (result.depth[sky] == 0).mean() > 0.99 and (result.depth[~sky] > 0).all()


def test_noisy_predictions_meet_the_accuracy_targets(truth):
    found = scores(aligned(truth, PredictionNoise()), truth)
    assert found["focal"] < 0.01, found
    assert found["ate"] < 0.01, found
    assert found["rpe_rot"] < 0.2, found
    assert found["abs_rel"] < 0.02, found


def test_garbage_window_is_reported_and_does_not_drag_the_result(truth):
    result = aligned(truth, PredictionNoise(garbage_windows=(4,)))
    found = scores(result, truth)
    assert any(w.startswith("Window 4 ") and "down-weighted" in w for w in result.warnings), result.warnings
    assert found["focal"] < 0.02 and found["ate"] < 0.02, found
    assert found["rpe_rot"] < 0.4 and found["abs_rel"] < 0.04, found


def first_frames(truth, count):
    """The first `count` frames of a reconstruction."""
    return Reconstruction(
        truth.camera_to_world[:count],
        truth.intrinsics,
        truth.depth[:count],
        truth.confidence[:count],
        truth.color[:count],
        truth.fps,
    )


def test_one_window_and_a_padded_short_clip(small_truth):
    one = first_frames(small_truth, 16)
    found = scores(aligned(one, NOISE_FREE), one)
    assert found["focal"] < 1e-3 and found["ate"] < 1e-3, found
    short = first_frames(small_truth, 6)
    predictions = simulate_window_predictions(short, plan_windows(6), NOISE_FREE)
    assert predictions[0].frames.tolist() == [0, 1, 2, 3, 4, 5] + [5] * 10
    result = align_windows(predictions, short.color)
    assert result.num_frames == 6
    assert scores(result, short)["ate"] < 1e-3


def test_invalid_frames_and_non_finite_values_degrade_with_warnings(small_truth):
    plan = plan_windows(small_truth.num_frames)
    predictions = simulate_window_predictions(small_truth, plan, PredictionNoise(), seed=3)
    for prediction in predictions:
        prediction.point_map[prediction.frames == 9] = 1.05
    predictions[1].ray_moment[2, 5, 7] = float("nan")
    predictions[0].point_map[3, :4] = float("inf")
    result = align_windows(predictions, small_truth.color)
    assert np.isfinite(result.camera_to_world).all()
    assert (result.depth[9] == 0).all()
    assert any("Frames [9]" in w and "interpolated" in w for w in result.warnings), result.warnings
    assert any(w.startswith("Window 1 holds 3 NaN") for w in result.warnings)
    assert any(w.startswith("Window 0 holds") for w in result.warnings)
    centres = result.camera_to_world[:, :3, 3]
    assert np.allclose(centres[9], (centres[8] + centres[10]) / 2)


def test_zero_confidence_window_is_ignored_and_all_empty_is_an_error(small_truth):
    predictions = simulate_window_predictions(small_truth, plan_windows(small_truth.num_frames), NOISE_FREE)
    predictions[1].point_confidence.zero_()
    result = align_windows(predictions, small_truth.color)
    assert any(w.startswith("Window 1 ") and "ignored" in w for w in result.warnings)
    assert scores(result, small_truth)["ate"] < 1e-3
    for prediction in predictions:
        prediction.point_confidence.zero_()
    with pytest.raises(Geo4DError, match="Every window is empty"):
        align_windows(predictions, small_truth.color)


def test_inconsistent_inputs_are_refused(small_truth):
    predictions = simulate_window_predictions(small_truth, plan_windows(small_truth.num_frames), NOISE_FREE)
    with pytest.raises(Geo4DError, match="frame colours"):
        align_windows(predictions, small_truth.color[:-1])
    smaller = WindowPrediction(
        frames=predictions[1].frames,
        point_map=predictions[1].point_map[:, :-1],
        point_confidence=predictions[1].point_confidence[:, :-1],
        disparity=predictions[1].disparity[:, :-1],
        ray_direction=predictions[1].ray_direction[:, :-1],
        ray_moment=predictions[1].ray_moment[:, :-1],
    )
    with pytest.raises(Geo4DError, match="same length and resolution"):
        align_windows([predictions[0], smaller], small_truth.color)
    with pytest.raises(Geo4DError, match="seen by no window"):
        align_windows([predictions[-1]], small_truth.color)
    with pytest.raises(Geo4DError, match="No window predictions"):
        align_windows([], small_truth.color)


def test_config_is_validated():
    with pytest.raises(ValueError, match="solver_pixels = 10"):
        AlignConfig(solver_pixels=10)
    with pytest.raises(ValueError, match="garbage_ratio"):
        AlignConfig(garbage_ratio=0.5)


@pytest.mark.slow
def test_a_thousand_frames():
    truth = render_scene(SceneConfig(frames=1000, width=48, height=32, seed=4))
    result = aligned(truth, PredictionNoise())
    assert result.num_frames == 1000 and np.isfinite(result.camera_to_world).all()
    found = scores(result, truth)
    assert found["focal"] < 0.01 and found["ate"] < 0.01 and found["abs_rel"] < 0.02, found


@pytest.mark.gpu
def test_cuda_matches_cpu(small_truth):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    predictions = simulate_window_predictions(
        small_truth, plan_windows(small_truth.num_frames), PredictionNoise()
    )
    on_cpu = align_windows(predictions, small_truth.color)
    on_gpu = align_windows(
        [WindowPrediction(**{k: v.cuda() for k, v in vars(p).items()}) for p in predictions],
        small_truth.color,
    )
    assert on_gpu.intrinsics.fx == pytest.approx(on_cpu.intrinsics.fx, rel=1e-4)
    assert np.allclose(on_gpu.camera_to_world, on_cpu.camera_to_world, atol=1e-3)
    assert np.allclose(on_gpu.depth, on_cpu.depth, rtol=1e-3, atol=1e-4)

"""The aligner on inputs like a real network's: per-window ray-focal errors, ray moments, handheld motion,
disparity at the range limits, and a result that says when not to trust it."""

import numpy as np
import pytest
import torch

from geo4d.core.align import align_windows
from geo4d.core.align.trust import FrameEvidence, assess, frame_list
from geo4d.core.evaluation.metrics import camera_metrics, depth_metrics, rotation_angle_deg
from geo4d.core.modalities import decode_disparity
from geo4d.core.prediction import WindowPrediction
from geo4d.core.synthetic.render import SceneConfig, render_scene
from geo4d.core.synthetic.simulated_predictions import PredictionNoise, simulate_window_predictions
from geo4d.core.windows import plan_windows

# The test noise: each window's rays made with a focal off by up to +-10 %, 0.5 deg ray noise.
REAL_NOISE = PredictionNoise(ray_angle_deg=0.5, ray_focal_spread=0.1)


@pytest.fixture(scope="module")
def orbit():
    return render_scene(SceneConfig(frames=48, width=160, height=96, seed=0))


@pytest.fixture(scope="module")
def handheld():
    return render_scene(SceneConfig(frames=48, width=160, height=96, seed=0, motion="handheld"))


def simulated(truth, noise, seed=1):
    return simulate_window_predictions(truth, plan_windows(truth.num_frames), noise, seed=seed)


def scores(result, truth):
    cameras = camera_metrics(result.camera_to_world, truth.camera_to_world)
    steps = [np.linalg.inv(c[:-1]) @ c[1:] for c in (truth.camera_to_world, result.camera_to_world)]
    return {
        "focal": abs(result.intrinsics.fx / truth.intrinsics.fx - 1),
        "ate": cameras.ate / cameras.path_length,
        "rpe_rot": cameras.rpe_rotation_deg,
        "abs_rel": depth_metrics(result.depth, truth.depth).abs_rel,
        "worst_step": rotation_angle_deg(np.linalg.inv(steps[0][:, :3, :3]) @ steps[1][:, :3, :3]).max(),
    }


@pytest.fixture(scope="module")
def orbit_result(orbit):
    return align_windows(simulated(orbit, REAL_NOISE), orbit.color)


def test_focal_comes_from_the_point_maps_not_the_rays_focal_error(orbit, orbit_result):
    found = scores(orbit_result, orbit)
    assert found["focal"] < 0.01, found
    assert found["ate"] < 0.01 and found["rpe_rot"] < 0.2 and found["abs_rel"] < 0.02, found
    estimates = orbit_result.settings["focal_estimates"]
    assert abs(estimates["point maps"]["difference"]) < 0.01, estimates
    # the rays' per-window errors are seen and reported, not followed
    assert abs(estimates["ray maps"]["difference"]) > 0.03, estimates
    assert any(w.startswith("The ray maps imply a focal of") for w in orbit_result.warnings), (
        orbit_result.warnings
    )


def test_ray_moments_place_the_cameras(orbit, orbit_result):
    predictions = simulated(orbit, REAL_NOISE)
    for prediction in predictions:
        prediction.ray_moment.zero_()
    without = align_windows(predictions, orbit.color)
    # the moments place each window's cameras, which start the per-frame poses and weigh the fused points
    moved = np.abs(without.camera_to_world[:, :3, 3] - orbit_result.camera_to_world[:, :3, 3]).max()
    assert moved > 1e-6, "the moments do not change the cameras"
    # moments that say nothing (all zero: every ray through one point) are not trusted
    assert scores(without, orbit)["ate"] < 0.01


def test_handheld_motion_with_outliers(handheld):
    poses = handheld.camera_to_world
    steps = np.linalg.inv(poses[:-1]) @ poses[1:]
    angles = rotation_angle_deg(steps[:, :3, :3])
    assert 3 < angles.mean() < 5.5 and angles.max() < 11, angles
    result = align_windows(simulated(handheld, REAL_NOISE), handheld.color)
    found = scores(result, handheld)
    assert found["ate"] < 0.02 and found["worst_step"] < 5, found
    assert not any("down-weighted" in w for w in result.warnings), result.warnings
    assert result.frame_confidence.min() > 0.5


def test_disparity_at_the_range_limits_is_told_from_valid_values():
    encoded = torch.tensor([-1.05, -1.04, -1.1, 1.1, 1.097, 0.3, -1.06])
    surface = torch.tensor([False, True, True, True, True, True, True])
    _, valid = decode_disparity(encoded, point_valid=surface)
    # sky marker dropped; a valid far value near the marker kept; clamped values dropped either end
    assert valid.tolist() == [False, True, False, False, False, True, True]
    _, without_points = decode_disparity(encoded)
    assert without_points.tolist() == [False, False, False, False, False, True, False]


def test_clamped_disparities_are_not_fused_as_depth(orbit):
    predictions = simulated(
        orbit, PredictionNoise(disparity_noise=0.0, outlier_fraction=0.0, point_noise=0.002)
    )
    for prediction in predictions:
        rows = slice(0, prediction.disparity.shape[1] // 2)
        valid = prediction.disparity[:, rows] > -1.03
        prediction.disparity[:, rows] = torch.where(valid, torch.tensor(1.1), prediction.disparity[:, rows])
    result = align_windows(predictions, orbit.color)
    assert scores(result, orbit)["abs_rel"] < 0.01


def test_confidence_and_warnings_of_a_path_that_jumps():
    angles = np.radians(np.r_[np.full(10, 3.0), 150.0, np.full(10, 3.0)])
    yaw = np.cumsum(np.r_[0.0, angles])
    rotations = np.zeros((len(yaw), 3, 3))
    rotations[:, 0, 0] = rotations[:, 1, 1] = np.cos(yaw)
    rotations[:, 0, 1], rotations[:, 1, 0] = -np.sin(yaw), np.sin(yaw)
    rotations[:, 2, 2] = 1
    count = len(yaw)
    evidence = FrameEvidence(
        np.full(count, 0.98), np.full(count, 0.01), np.full(count, 0.01), 0.01, np.ones(count, dtype=bool)
    )
    evidence.disagreement[15:18] = 0.3
    evidence.posed[3] = False
    confidence, warnings = assess(rotations, evidence)
    assert any("turns 150.0 deg between frames 10 and 11" in w for w in warnings), warnings
    assert any("Windows disagree about frames 15-17" in w for w in warnings), warnings
    assert any(w.startswith("6 of 22 frames have a camera confidence under 0.5") for w in warnings), warnings
    assert confidence[3] == 0 and confidence[10] < 0.5 and confidence[0] > 0.9
    assert frame_list(np.array([1, 2, 3, 7, 9, 10])) == "1-3, 7, 9-10"


def test_a_garbage_result_is_not_silent(orbit):
    """Windows of noise give a result that warns and has low confidence (never 'warnings none')."""
    predictions = simulated(orbit, REAL_NOISE)
    generator = torch.Generator().manual_seed(0)
    noisy = [
        WindowPrediction(
            frames=p.frames,
            point_map=2 * torch.rand(p.point_map.shape, generator=generator) - 1,
            point_confidence=p.point_confidence,
            disparity=p.disparity,
            ray_direction=torch.nn.functional.normalize(
                torch.randn(p.ray_direction.shape, generator=generator), dim=-1
            ),
            ray_moment=torch.randn(p.ray_moment.shape, generator=generator),
        )
        for p in predictions
    ]
    result = align_windows(noisy, orbit.color)
    assert result.warnings
    assert result.frame_confidence.mean() < 0.5

"""Motion masks: a moving object is flagged, static surfaces are not, occlusion and edges do not flag motion."""

import numpy as np
import pytest

from geo4d.core.motion_masks import (
    MotionConfig,
    agreement_tolerance,
    camera_baseline,
    motion_scores,
    surrounding_depths,
)
from geo4d.core.result import Intrinsics
from geo4d.core.synthetic.render import SceneConfig, render_scene

K = Intrinsics(40.0, 40.0, 32.0, 24.0)
FRAMES, HEIGHT, WIDTH = 24, 48, 64


def layered_scene(mover_speed: float, camera_step: float = 0.08, slab_half_width: float = 0.4):
    """Cameras sliding along x (looking +z) at a background wall z = 10, a static pillar |x| < 0.5 at z = 4
    (it hides a strip of the wall that moves with parallax) and a slab at z = 6 over x in m +- half width
    with m = 1.5 + mover_speed * t. Returns cameras [T, 4, 4], depth [T, H, W] and the true moving pixels."""
    t = np.arange(FRAMES)
    camera_to_world = np.tile(np.eye(4), (FRAMES, 1, 1))
    camera_to_world[:, 0, 3] = camera_step * t
    u = (np.arange(WIDTH) + 0.5 - K.cx) / K.fx
    ray_x = camera_to_world[:, 0, 3][:, None] + 0  # [T, 1]
    depth = np.full((FRAMES, HEIGHT, WIDTH), 10.0)
    moving = np.zeros(depth.shape, dtype=bool)
    slab_x = ray_x + u[None, :] * 6.0
    centre = 1.5 + mover_speed * t[:, None]
    on_slab = np.abs(slab_x - centre) < slab_half_width
    depth[on_slab[:, None, :].repeat(HEIGHT, 1)] = 6.0
    moving[:] = on_slab[:, None, :] if mover_speed else False
    pillar_x = ray_x + u[None, :] * 4.0
    on_pillar = np.abs(pillar_x) < 0.5
    depth[on_pillar[:, None, :].repeat(HEIGHT, 1)] = 4.0
    moving &= ~on_pillar[:, None, :]
    return camera_to_world, depth.astype(np.float32), moving


def test_a_moving_slab_is_flagged_and_the_static_wall_and_pillar_are_not():
    cameras, depth, moving = layered_scene(mover_speed=0.15)
    masks = motion_scores(cameras, K, depth, depth > 0)
    flagged = masks.moving()
    assert flagged[moving].mean() > 0.9
    assert flagged[~moving].mean() < 0.01
    assert masks.score.dtype == np.float32 and 0 <= masks.score.min() and masks.score.max() <= 1


def test_occlusion_and_edges_do_not_flag_motion():
    """Every pixel is static; the pillar hides changing strips of the wall from the neighbours and its
    edges sit next to the far wall, yet nothing counts as moving."""
    cameras, depth, moving = layered_scene(mover_speed=0.0)
    assert not moving.any()
    masks = motion_scores(cameras, K, depth, depth > 0)
    assert not masks.moving().any()
    assert masks.warnings == []  # the camera moves enough


def test_a_still_camera_is_detected_and_warned_about():
    cameras, depth, _ = layered_scene(mover_speed=0.15, camera_step=0.0)
    masks = motion_scores(cameras, K, depth, depth > 0)
    assert masks.camera_baseline == 0.0
    assert len(masks.warnings) == 1 and "camera barely moves" in masks.warnings[0]
    assert camera_baseline(layered_scene(0.15)[0], depth) > MotionConfig().near_static_baseline


def test_invalid_pixels_have_no_score_and_no_say():
    cameras, depth, moving = layered_scene(mover_speed=0.15)
    valid = depth > 0
    valid[:, :, :8] = False
    masks = motion_scores(cameras, K, depth, valid)
    assert not masks.score[:, :, :8].any()
    assert masks.moving()[moving & valid].mean() > 0.9


def test_a_slab_sliding_within_its_own_plane_is_filled_from_its_edges():
    """A wide slab moving slowly sideways keeps its depth along most rays: only its edges show the wall
    behind. Growing over the slab's continuous depth fills it, and stops at the depth jump to the wall."""
    cameras, depth, moving = layered_scene(mover_speed=0.04, slab_half_width=1.5)
    own_evidence = motion_scores(cameras, K, depth, depth > 0, MotionConfig(growth=0)).moving()
    grown = motion_scores(cameras, K, depth, depth > 0, MotionConfig(growth=10)).moving()
    assert own_evidence[moving].mean() < 0.3
    # In the first frames the trailing edge hides behind the pillar and nothing shows the motion.
    shown = own_evidence.any(axis=(1, 2))
    assert shown.sum() >= FRAMES - 6
    assert grown[shown][moving[shown]].mean() > 0.95
    assert not grown[~moving].any()


def test_the_tolerance_follows_the_depth_noise():
    cameras, depth, moving = layered_scene(mover_speed=0.15)
    assert agreement_tolerance(cameras, K, depth) == MotionConfig().min_tolerance
    noisy = depth * (1 + 0.01 * np.random.default_rng(0).standard_normal(depth.shape)).astype(np.float32)
    tolerance = agreement_tolerance(cameras, K, noisy)
    assert 0.025 < tolerance < 0.05  # 2.5 times the spread of two 1 % noises
    assert agreement_tolerance(cameras, K, noisy, MotionConfig(tolerance=0.2)) == 0.2
    flagged = motion_scores(cameras, K, noisy, noisy > 0).moving()
    assert flagged[~moving].mean() < 0.01
    assert flagged[moving].mean() > 0.9


def test_surrounding_depths_bracket_the_projection_and_skip_the_border():
    seen = np.array([[1.0, 2.0, 3.0], [4.0, np.inf, 6.0]])
    k = Intrinsics(1.0, 1.0, 0.0, 0.0)
    # Camera-frame points (identity pose) projecting to (u, v) = (1.25, 0.75), (0.4, 1.0) and (2.6, 1.0).
    points = np.array([[1.25, 0.75, 1.0], [0.4, 1.0, 1.0], [2.6, 1.0, 1.0]])
    z, corners, weights, inside = surrounding_depths(points, np.eye(4), seen, k)
    assert inside.tolist() == [True, False, False]  # beyond the outer pixel centres nothing is bracketed
    np.testing.assert_array_equal(corners[:, 0], [1.0, 2.0, 4.0, np.inf])
    # x = u - 0.5 = 0.75 across from column 0, y = v - 0.5 = 0.25 down from row 0.
    np.testing.assert_allclose(weights[:, 0], [0.25 * 0.75, 0.75 * 0.75, 0.25 * 0.25, 0.75 * 0.25])
    np.testing.assert_array_equal(z, 1.0)


def test_synthetic_scene_masks_match_the_truth():
    truth = render_scene(SceneConfig(frames=48, width=64, height=40, seed=1))
    actual = truth.motion.moving() & (truth.depth > 0)
    predicted = motion_scores(truth.camera_to_world, truth.intrinsics, truth.depth, truth.depth > 0).moving()
    intersection = (predicted & actual).sum()
    assert intersection / (predicted | actual).sum() > 0.8
    assert intersection / predicted.sum() > 0.97


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"offsets": ()}, "offsets"),
        ({"offsets": (2, 2)}, "offsets"),
        ({"tolerance": 0.0}, "tolerance"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_neighbours": 0}, "min_neighbours"),
        ({"min_tolerance": 1.0}, "min_tolerance"),
        ({"noise_multiple": 0.5}, "noise_multiple"),
        ({"growth": 0.5}, "growth"),
    ],
)
def test_bad_config_is_refused_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        MotionConfig(**fields)

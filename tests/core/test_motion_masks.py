"""Motion masks: a moving object is flagged, static surfaces are not, occlusion and edges do not flag motion."""

import numpy as np
import pytest

from geo4d.core.motion_masks import MotionConfig, camera_baseline, motion_scores, nearest_surface
from geo4d.core.result import Intrinsics
from geo4d.core.synthetic.render import SceneConfig, render_scene

K = Intrinsics(40.0, 40.0, 32.0, 24.0)
FRAMES, HEIGHT, WIDTH = 24, 48, 64


def layered_scene(mover_speed: float, camera_step: float = 0.08):
    """Cameras sliding along x (looking +z) at a background wall z = 10, a static pillar |x| < 0.5 at z = 4
    (it hides a strip of the wall that moves with parallax) and a slab at z = 6 over x in m +- 0.4 with
    m = 1.5 + mover_speed * t. Returns cameras [T, 4, 4], depth [T, H, W] and the true moving pixels."""
    t = np.arange(FRAMES)
    camera_to_world = np.tile(np.eye(4), (FRAMES, 1, 1))
    camera_to_world[:, 0, 3] = camera_step * t
    u = (np.arange(WIDTH) + 0.5 - K.cx) / K.fx
    ray_x = camera_to_world[:, 0, 3][:, None] + 0  # [T, 1]
    depth = np.full((FRAMES, HEIGHT, WIDTH), 10.0)
    moving = np.zeros(depth.shape, dtype=bool)
    slab_x = ray_x + u[None, :] * 6.0
    centre = 1.5 + mover_speed * t[:, None]
    on_slab = np.abs(slab_x - centre) < 0.4
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


def test_nearest_surface_ignores_invalid_depth():
    depth = np.array([[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    nearest = nearest_surface(depth, 1)
    assert nearest[0, 0, 0] == 5.0 and nearest[0, 1, 1] == 2.0 and nearest[0, 0, 2] == 5.0
    assert np.isinf(nearest_surface(depth, 0)[0, 0, 0])


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
    ],
)
def test_bad_config_is_refused_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        MotionConfig(**fields)

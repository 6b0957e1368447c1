"""The fused static cloud: duplicates merged on the depth-following grid, outliers dropped, weighted colour."""

import numpy as np
import pytest

from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.core.static_cloud import FusionConfig, averaged_static_depth, fuse_static_points

FRAMES, HEIGHT, WIDTH = 4, 16, 20


def wall_result(color=None, confidence=None) -> Reconstruction:
    """FRAMES identical cameras looking at a wall 4 units away (every frame sees the same surface)."""
    depth = np.full((FRAMES, HEIGHT, WIDTH), 4.0, dtype=np.float32)
    return Reconstruction(
        camera_to_world=np.tile(np.eye(4), (FRAMES, 1, 1)),
        intrinsics=Intrinsics(20.0, 20.0, WIDTH / 2, HEIGHT / 2),
        depth=depth,
        confidence=np.ones_like(depth) if confidence is None else confidence,
        color=np.full((*depth.shape, 3), 100, np.uint8) if color is None else color,
        fps=24.0,
    )


def test_duplicates_of_every_frame_merge_into_one_cloud_on_the_surface():
    result = wall_result()
    cloud = fuse_static_points(result, np.ones(result.depth.shape, bool))
    one_frame = HEIGHT * WIDTH
    assert one_frame / 2 <= len(cloud) <= 1.5 * one_frame  # not FRAMES copies of the wall
    np.testing.assert_allclose(cloud.xyz[:, 2], 4.0, atol=1e-5)
    assert (cloud.frames == FRAMES).all()
    assert cloud.rgb.dtype == np.uint8 and (cloud.rgb == 100).all()


def test_cells_follow_the_depth():
    near, far = wall_result(), wall_result()
    far.depth[:] = 40.0
    static = np.ones(near.depth.shape, bool)
    # Ten times as far, the same pixels cover a hundred times the area: a fixed grid would hold about a
    # hundred times the cells; this one about as many (within the power-of-two rounding of the cell side).
    ratio = len(fuse_static_points(far, static)) / len(fuse_static_points(near, static))
    assert 0.25 < ratio < 4.0


def test_a_point_seen_by_too_few_frames_is_dropped():
    result = wall_result()
    result.depth[0, 5, 5] = 2.0  # a spike in one frame only
    cloud = fuse_static_points(result, np.ones(result.depth.shape, bool), FusionConfig(min_frames=2))
    assert np.abs(cloud.xyz[:, 2] - 4.0).max() < 1e-5
    kept_all = fuse_static_points(result, np.ones(result.depth.shape, bool), FusionConfig(min_frames=1))
    assert (np.abs(kept_all.xyz[:, 2] - 2.0) < 1e-5).sum() == 1


def test_only_static_pixels_enter_and_colour_is_confidence_weighted():
    color = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    color[1] = 200
    confidence = np.ones((FRAMES, HEIGHT, WIDTH), np.float32)
    confidence[1] = 3.0
    result = wall_result(color, confidence)
    static = np.zeros(result.depth.shape, bool)
    static[:2] = True  # frames 0 (black, weight 1) and 1 (200, weight 3)
    cloud = fuse_static_points(result, static, FusionConfig(min_frames=2))
    assert len(cloud) and (cloud.rgb == 150).all()
    np.testing.assert_allclose(cloud.confidence, 2.5)  # (1 * 1 + 3 * 3) / 4
    assert not len(fuse_static_points(result, np.zeros(result.depth.shape, bool)))


def test_static_depth_noise_is_averaged_over_neighbouring_frames_and_edges_are_kept():
    result = wall_result()
    noise = 0.004 * np.random.default_rng(0).standard_normal(result.depth.shape)
    result.depth *= (1 + noise).astype(np.float32)
    result.depth[:, :, WIDTH // 2 :] *= 2.0  # a step to a farther wall: never averaged across
    static = np.ones(result.depth.shape, bool)
    static[0, 0, 0] = False
    averaged = averaged_static_depth(result, static)
    base = np.where(np.arange(WIDTH) < WIDTH // 2, 4.0, 8.0)
    before = np.abs(result.depth / base - 1)
    after = np.abs(averaged / base - 1)
    assert after[static].std() < 0.65 * before[static].std()  # every frame sees the same walls
    assert averaged[0, 0, 0] == result.depth[0, 0, 0]  # a moving pixel keeps its depth
    assert np.abs(averaged[:, :, WIDTH // 2 :] / 8.0 - 1).max() < 0.02


@pytest.mark.parametrize("fields", [{"cell_pixels": 0.0}, {"min_frames": 0}])
def test_bad_config_is_refused(fields):
    with pytest.raises(ValueError, match=next(iter(fields))):
        FusionConfig(**fields)

"""Modality encodings both ways, and the cameras and focal that ray maps imply, on synthetic ground truth."""

import math

import numpy as np
import pytest
import torch

from geo4d.core import modalities as m
from geo4d.core.camera import invert_rigid, unproject_depth
from geo4d.core.synthetic.render import SceneConfig, render_scene
from geo4d.core.synthetic.simulated_predictions import random_rotation


@pytest.fixture(scope="module")
def window():
    """First 6 frames of a synthetic scene as one window: first-camera points [L, H, W, 3], validity, cameras."""
    truth = render_scene(SceneConfig(frames=6, width=64, height=40, seed=3))
    k = truth.intrinsics
    to_first = invert_rigid(truth.camera_to_world[0]) @ truth.camera_to_world
    local = unproject_depth(truth.depth, k.fx, k.fy, k.cx, k.cy)
    points = np.einsum("lij,lhwj->lhwi", to_first[:, :3, :3], local) + to_first[:, None, None, :3, 3]
    valid = torch.from_numpy(truth.depth > 0)
    return truth, torch.from_numpy(points), valid, torch.from_numpy(to_first)


def test_point_map_round_trip(window):
    truth, points, valid, _ = window
    assert not valid.all(), "the scene should have sky pixels"
    encoded, norm = m.encode_point_map(points, valid)
    z = points[..., 2][valid]
    assert norm.lower == pytest.approx(float(torch.quantile(z, 0.02)) - 0.01, rel=1e-2)
    assert encoded.abs().max() <= 2.0
    decoded, decoded_valid = m.decode_point_map(encoded)
    inside = valid & (encoded.abs() < 1.99).all(-1)
    assert torch.equal(decoded_valid, inside)
    expected = m.camera_points_to_decoded(points, norm)
    assert torch.allclose(decoded[inside], expected[inside], atol=1e-12)
    assert torch.allclose(encoded[~valid], torch.full_like(encoded[~valid], 1.05))
    first_camera = m.camera_points_to_decoded(torch.zeros(3, dtype=torch.float64), norm)
    assert first_camera[2] == pytest.approx(-norm.lower / norm.scale)


def test_disparity_round_trip_is_affine_in_disparity(window):
    truth, _, valid, _ = window
    depth = torch.from_numpy(truth.depth.astype(np.float64))
    encoded, norm = m.encode_disparity(depth, valid)
    assert encoded.shape == (*depth.shape, 3) and torch.equal(encoded[..., 0], encoded[..., 2])
    decoded, decoded_valid = m.decode_disparity(encoded.mean(-1))
    # Valid disparities far below the 2nd percentile fall near the invalid value -1.05: the encoding is ambiguous there.
    assert not (decoded_valid & ~valid).any()
    assert decoded_valid[valid].float().mean() > 0.98
    unclamped = valid & (encoded[..., 0].abs() < 1.1)
    assert unclamped.float().mean() > 0.9
    expected = (1 / depth[unclamped] - norm.lower) / norm.scale
    assert torch.allclose(decoded[unclamped], expected, atol=1e-12)


def test_rays_give_back_cameras_and_focal(window):
    truth, _, valid, to_first = window
    norm = m.Normalisation(0.5, 3.0)
    direction, moment = m.encode_rays(to_first, truth.intrinsics.fx, truth.height, truth.width, norm)
    assert torch.allclose(direction.norm(dim=-1), torch.ones(()).double())
    pixels = m.pixel_grid(truth.height, truth.width, dtype=torch.float64).reshape(-1, 2)
    weights = torch.ones(direction.shape[0], pixels.shape[0], dtype=torch.float64)
    centre = (truth.width / 2, truth.height / 2)
    trajectory = m.ray_trajectory_from_maps(
        direction.flatten(1, 2), moment.flatten(1, 2), pixels, weights, centre
    )
    assert torch.allclose(
        trajectory.focals, torch.full_like(trajectory.focals, truth.intrinsics.fx), rtol=1e-9
    )
    assert torch.allclose(trajectory.rotations, to_first[:, :3, :3], atol=1e-9)
    expected_centres = m.camera_points_to_decoded(to_first[:, :3, 3], norm)
    assert torch.allclose(trajectory.centres, expected_centres, atol=1e-9)


def test_rotation_and_focal_under_a_random_rotation():
    generator = torch.Generator().manual_seed(5)
    rotation = random_rotation(generator, 40.0)
    height, width, focal = 30, 50, 41.5
    local = m.camera_ray_directions(height, width, focal, dtype=torch.float64).reshape(-1, 3)
    pixels = m.pixel_grid(height, width, dtype=torch.float64).reshape(-1, 2)
    found_rotation, found_focal = m.rotation_and_focal_from_directions(
        3.0 * local @ rotation.T,
        pixels,
        (width / 2, height / 2),
        torch.ones(len(pixels), dtype=torch.float64),
    )
    assert float(found_focal) == pytest.approx(focal, rel=1e-9)
    assert torch.allclose(found_rotation, rotation, atol=1e-9)


def test_line_intersection_ignores_zero_weight_lines():
    centre = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    directions = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    points = centre + 2.5 * directions
    points[:5] += 10.0
    weights = torch.ones(50, dtype=torch.float64)
    weights[:5] = 0
    assert torch.allclose(m.line_intersection(points, directions, weights), centre, atol=1e-9)


def test_decoding_marks_sky_far_and_non_finite_values_invalid():
    encoded = torch.tensor([[1.05, 1.05, 1.05], [0.2, 0.1, 1.995], [math.nan, 0.0, 0.0], [0.5, -0.5, 0.0]])
    _, valid = m.decode_point_map(encoded)
    assert valid.tolist() == [False, False, False, True]
    _, disparity_valid = m.decode_disparity(torch.tensor([-1.05, math.inf, 0.3]))
    assert disparity_valid.tolist() == [False, False, True]

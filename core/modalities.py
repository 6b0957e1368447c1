"""Geo4D's modality encodings both ways (point map, disparity, Plücker rays) and what rays imply about cameras.

All maps are torch tensors [L, H, W, C] for the L frames of one window, in that window's first-camera
frame (OpenCV axes). Pixel centres follow core.camera: (j + 0.5, i + 0.5), principal point (W/2, H/2).

Point map: with z2, z98 the 2nd and 98th percentiles of the valid depths of the window,
lb = z2 - 0.01 and s = z98 - z2 + 0.02, the encoding is x' = 2x/s, y' = 2y/s, z' = 2(z - lb)/s - 1,
invalid pixels 1.05 in all channels, clamped to [-2, 2]. Decoding gives the "decoded frame"
(x'/2, y'/2, (z'+1)/2) = (x/s, y/s, (z - lb)/s): the window's geometry up to a similarity, with the
first camera at (0, 0, -lb/s). Sky/invalid at decode: all channels within a tolerance of 1.05, or any
|value| > 1.99.

Disparity: the same percentile normalisation applied to 1/depth, repeated to 3 channels, invalid
-1.05, clamped to [-1.1, 1.1]. Decoding drops clamped values and tells near-marker values of real
surfaces from sky by the point map. Decoding averages the channels; (D' + 1)/2 is an affine function of
disparity with an unknown per-window scale and shift.

Rays: per pixel the unit direction d of its viewing ray and the moment m = o x d, both in the decoded
frame of the window's point map (o is the camera centre in that frame, so moments share the point
map's scale). The network is only trusted up to a per-window similarity between its ray trajectory
and its point map; the aligner estimates it, so the choice of moment scale does not bias the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .camera import pixel_centers

POINT_INVALID = 1.05
POINT_CLAMP = 2.0
POINT_FAR = 1.99
DISPARITY_INVALID = -1.05
DISPARITY_CLAMP = 1.1
# Decoded disparities this close to the clamp are bounds, not values.
DISPARITY_CLAMP_MARGIN = 0.005
PERCENTILE_LOW = 0.02
PERCENTILE_HIGH = 0.98
PERCENTILE_MARGIN = 0.01


@dataclass(frozen=True)
class Normalisation:
    """The percentile normalisation of one window: value -> (value - lower) / scale (decoded units)."""

    lower: float
    scale: float


def percentile_normalisation(values: torch.Tensor, valid: torch.Tensor) -> Normalisation:
    """lower = q2 - 0.01, scale = q98 - q2 + 0.02 over the valid entries of `values` (any shape)."""
    chosen = values[valid].double()
    if chosen.numel() == 0:
        return Normalisation(0.0, 1.0)
    sorted_values = torch.sort(chosen).values
    last = sorted_values.numel() - 1
    low = sorted_values[round(PERCENTILE_LOW * last)].item()
    high = sorted_values[round(PERCENTILE_HIGH * last)].item()
    return Normalisation(low - PERCENTILE_MARGIN, high - low + 2 * PERCENTILE_MARGIN)


def camera_points_to_decoded(points: torch.Tensor, norm: Normalisation) -> torch.Tensor:
    """First-camera points [..., 3] -> the decoded frame (x/s, y/s, (z - lb)/s)."""
    shift = torch.tensor([0.0, 0.0, norm.lower], dtype=points.dtype, device=points.device)
    return (points - shift) / norm.scale


def encode_decoded_points(decoded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Decoded-frame points [L, H, W, 3] -> the network's encoding (invalid = 1.05, clamp [-2, 2])."""
    encoded = torch.cat([2 * decoded[..., :2], 2 * decoded[..., 2:] - 1], dim=-1)
    encoded = torch.where(valid[..., None], encoded, torch.full_like(encoded, POINT_INVALID))
    return encoded.clamp(-POINT_CLAMP, POINT_CLAMP)


def encode_point_map(points: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, Normalisation]:
    """First-camera points [L, H, W, 3] and validity [L, H, W] -> encoded point map and its normalisation."""
    norm = percentile_normalisation(points[..., 2], valid)
    return encode_decoded_points(camera_points_to_decoded(points, norm), valid), norm


def decode_point_map(encoded: torch.Tensor, sky_tolerance: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded point map [..., 3] -> (decoded-frame points [..., 3], valid [...] bool).

    Invalid: all channels within `sky_tolerance` of 1.05, any |value| > 1.99, or a non-finite value.
    """
    finite = torch.isfinite(encoded).all(dim=-1)
    clean = torch.nan_to_num(encoded, nan=POINT_INVALID, posinf=POINT_INVALID, neginf=POINT_INVALID)
    sky = ((clean - POINT_INVALID).abs() < sky_tolerance).all(dim=-1)
    far = (clean.abs() > POINT_FAR).any(dim=-1)
    decoded = torch.cat([clean[..., :2] / 2, (clean[..., 2:] + 1) / 2], dim=-1)
    return decoded, finite & ~sky & ~far


def encode_disparity(
    depth: torch.Tensor, valid: torch.Tensor, clamp: bool = True
) -> tuple[torch.Tensor, Normalisation]:
    """Depth [L, H, W] (camera z) -> encoded disparity [L, H, W, 3] (3 equal channels) and its normalisation.

    clamp=False leaves valid values unclamped (for simulating a network whose normalisation is off, which
    is clamped after that error).
    """
    disparity = torch.where(valid, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
    norm = percentile_normalisation(disparity, valid)
    encoded = 2 * (disparity - norm.lower) / norm.scale - 1
    if clamp:
        encoded = encoded.clamp(-DISPARITY_CLAMP, DISPARITY_CLAMP)
    encoded = torch.where(valid, encoded, torch.full_like(encoded, DISPARITY_INVALID))
    return encoded[..., None].expand(*encoded.shape, 3), norm


def decode_disparity(
    disparity: torch.Tensor, tolerance: float = 0.02, point_valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-mean encoded disparity [...] -> ((D' + 1)/2, an affine function of disparity; valid [...] bool).

    Invalid: non-finite values; values at the clamp (within DISPARITY_CLAMP_MARGIN of +-1.1), which only
    say the disparity lies beyond the range; and values within `tolerance` of the marker -1.05, unless
    `point_valid` (the point map's validity, same shape) says the pixel holds a surface: valid disparities
    of the farthest few per cent of a window also fall there, and the point map tells them from sky.
    """
    finite = torch.isfinite(disparity)
    clean = torch.nan_to_num(
        disparity, nan=DISPARITY_INVALID, posinf=DISPARITY_INVALID, neginf=DISPARITY_INVALID
    )
    near_marker = (clean - DISPARITY_INVALID).abs() <= tolerance
    if point_valid is not None:
        near_marker = near_marker & ~point_valid
    clamped = clean.abs() >= DISPARITY_CLAMP - DISPARITY_CLAMP_MARGIN
    return (clean + 1) / 2, finite & ~near_marker & ~clamped


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[H, W, 2] pixel centres (u, v) = (column + 0.5, row + 0.5), core.camera's convention."""
    u, v = pixel_centers(height, width, np.float64)
    return torch.from_numpy(np.stack([u, v], axis=-1)).to(device, dtype)


def camera_ray_directions(
    height: int, width: int, focal: float, device=None, dtype=torch.float32
) -> torch.Tensor:
    """[H, W, 3] unit viewing directions in camera axes, principal point (W/2, H/2)."""
    pixels = pixel_grid(height, width, device, dtype)
    centre = torch.tensor([width / 2, height / 2], device=device, dtype=dtype)
    rays = torch.cat([(pixels - centre) / focal, torch.ones_like(pixels[..., :1])], dim=-1)
    return rays / rays.norm(dim=-1, keepdim=True)


def encode_rays(
    camera_to_first: torch.Tensor, focal: float, height: int, width: int, norm: Normalisation
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras [L, 4, 4] (camera -> window's first camera) -> (direction, moment), each [L, H, W, 3].

    Directions are unit vectors in the first-camera axes; moments o x d use the centre o in the decoded
    frame of the point map normalised by `norm`.
    """
    local = camera_ray_directions(height, width, focal, camera_to_first.device, camera_to_first.dtype)
    direction = torch.einsum("lij,hwj->lhwi", camera_to_first[:, :3, :3], local)
    centre = camera_points_to_decoded(camera_to_first[:, :3, 3], norm)
    moment = torch.cross(centre[:, None, None, :].expand_as(direction), direction, dim=-1)
    return direction, moment


def line_intersection(points: torch.Tensor, directions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Least-squares meeting point [..., 3] of lines through points [..., P, 3] along directions [..., P, 3].

    Minimises sum_p w_p |(I - d_p d_p^T)(c - q_p)|^2; weights [..., P] >= 0.
    """
    unit = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(3, dtype=points.dtype, device=points.device)
    weighted = unit * weights[..., None]
    normal = weights.sum(-1)[..., None, None] * eye - weighted.transpose(-1, -2) @ unit
    along = (unit * points).sum(-1, keepdim=True)
    rhs = (weights[..., None] * points).sum(-2) - (weighted * along).sum(-2)
    regulariser = 1e-12 * normal.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None].clamp_min(1e-12) * eye
    return torch.linalg.solve(normal + regulariser, rhs[..., None])[..., 0]


def rotation_and_focal_from_directions(
    directions: torch.Tensor, pixels: torch.Tensor, centre: tuple[float, float], weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera rotation and focal that make pixel rays point along `directions`.

    directions [..., P, 3] (any length) in some frame; pixels [..., P, 2] (u, v); centre (cx, cy);
    weights [..., P]. The directions are a homography H = K R^T away from the centred pixels
    (a weighted DLT), so H H^T is proportional to K K^T, which gives the focal; R follows from
    K^-1 H projected onto SO(3). Returns rotation [..., 3, 3] (camera -> that frame) and focal [...] in pixels.
    """
    unit = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    size = 2 * max(centre)
    x = (pixels[..., 0] - centre[0]) / size
    y = (pixels[..., 1] - centre[1]) / size
    zero = torch.zeros_like(unit)
    rows_u = torch.cat([-unit, zero, x[..., None] * unit], dim=-1)
    rows_v = torch.cat([zero, -unit, y[..., None] * unit], dim=-1)
    normal = (rows_u * weights[..., None]).transpose(-1, -2) @ rows_u
    normal = normal + (rows_v * weights[..., None]).transpose(-1, -2) @ rows_v
    homography = torch.linalg.eigh(normal.double()).eigenvectors[..., 0].reshape(*normal.shape[:-2], 3, 3)
    product = homography @ homography.transpose(-1, -2)
    focal_normalised = (
        ((product[..., 0, 0] + product[..., 1, 1]) / (2 * product[..., 2, 2])).clamp_min(1e-12).sqrt()
    )
    inverse_k = torch.diag_embed(
        torch.stack([1 / focal_normalised, 1 / focal_normalised, torch.ones_like(focal_normalised)], -1)
    )
    rotation_t = inverse_k @ homography
    rotation_t = rotation_t * torch.sign(torch.linalg.det(rotation_t))[..., None, None]
    u, _, vh = torch.linalg.svd(rotation_t)
    rotation = (u @ vh).transpose(-1, -2)
    return rotation.to(directions.dtype), (focal_normalised * size).to(directions.dtype)


@dataclass
class RayTrajectory:
    """Cameras implied by one window's ray maps: centres [L, 3] and rotations [L, 3, 3] (camera -> window
    frame) in the ray map's frame, and the focal [L] in pixels that each frame's directions imply."""

    centres: torch.Tensor
    rotations: torch.Tensor
    focals: torch.Tensor


def ray_trajectory_from_maps(
    direction: torch.Tensor,
    moment: torch.Tensor,
    pixels: torch.Tensor,
    weights: torch.Tensor,
    centre: tuple[float, float],
) -> RayTrajectory:
    """Cameras of one window from its ray maps sampled at P pixels.

    direction, moment [..., P, 3]; pixels [P, 2] or [..., P, 2] (u, v); weights [..., P].
    Centre = least-squares intersection of the Plücker lines (closest point to the origin d x m / |d|^2);
    rotation and focal from the directions (rotation_and_focal_from_directions).
    """
    norm_sq = (direction * direction).sum(-1, keepdim=True).clamp_min(1e-12)
    on_line = torch.cross(direction, moment, dim=-1) / norm_sq
    centres = line_intersection(on_line, direction, weights)
    pixels = pixels.expand(*direction.shape[:-1], 2)
    rotations, focals = rotation_and_focal_from_directions(direction, pixels, centre, weights)
    return RayTrajectory(centres, rotations, focals)

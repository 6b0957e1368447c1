"""Per-frame camera poses against the fused points: orthogonal iterations, exact centres, robust weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import Geo4DError
from ..modalities import line_intersection
from .solvers import camera_points, cauchy_weights, masked_median, orthogonal_iteration, ray_distance


@dataclass(frozen=True)
class FramePoses:
    """Camera-to-world rotation [T, 3, 3] and centre [T, 3] per frame; posed [T] bool: solved (the others
    interpolated); fit_share [T]: share of each frame's fused weight that its camera fits within the robust
    width; residual [T]: median distance of its fused points from their pixel rays relative to depth."""

    rotation: torch.Tensor
    centre: torch.Tensor
    posed: np.ndarray
    fit_share: np.ndarray
    residual: np.ndarray


def _interpolate_unposed(
    rotation: torch.Tensor, centre: torch.Tensor, posed: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill frames without a pose: centres linearly between posed neighbours, rotation of the nearest."""
    known = np.nonzero(posed)[0]
    every = np.arange(len(posed))
    centre_np = centre.cpu().numpy()
    filled = np.stack([np.interp(every, known, centre_np[known, axis]) for axis in range(3)], axis=-1)
    nearest = known[np.abs(every[:, None] - known[None, :]).argmin(axis=1)]
    return rotation[torch.from_numpy(nearest).to(rotation.device)], torch.from_numpy(filled).to(centre)


def frame_poses(grid, fused, fused_weight, world_cams, focal, config, num_frames) -> FramePoses:
    """Per-frame cameras through the fused points [T, P, 3] with weights [T, P], from initial cameras
    world_cams (rotation [T, 3, 3], centre [T, 3]) and the shared focal (see FramePoses).

    Each step turns the camera by an orthogonal iteration, then puts its centre where the rotated pixel
    rays through the fused points meet (the exact least-squares centre for that rotation, which converges
    along the optical axis far faster than orthogonal iteration alone).
    """
    rotation, centre = world_cams
    offsets = grid.offsets.expand(num_frames, -1, -1)
    rays = torch.cat([offsets / focal, torch.ones_like(offsets[..., :1])], dim=-1)
    rays = rays / rays.norm(dim=-1, keepdim=True)
    weights = fused_weight.clone()
    posed = ((weights > 0).sum(-1) >= config.min_frame_points).cpu().numpy()
    if not posed.any():
        raise Geo4DError(
            "No frame has enough valid pixels to place its camera: the predictions are all sky or invalid."
        )
    weights = weights * torch.from_numpy(posed).to(weights)[:, None]
    for step in range(config.pose_steps):
        rotation, _ = orthogonal_iteration(fused, rays, weights, rotation, centre, 1)
        centre = line_intersection(fused, torch.einsum("tij,tpj->tpi", rotation, rays), weights)
        if step % 2 == 0:
            distance = ray_distance(fused, rays, rotation, centre) / camera_points(fused, rotation, centre)[
                ..., 2
            ].abs().clamp_min(1e-9)
            weights = cauchy_weights(
                distance.reshape(1, -1), fused_weight.reshape(1, -1), config.robust_width
            ).reshape(weights.shape)
            weights = weights * torch.from_numpy(posed).to(weights)[:, None]
    inlier = (weights > 0.5 * fused_weight) * fused_weight
    fit_share = (inlier.sum(-1) / fused_weight.sum(-1).clamp_min(1e-30)).cpu().numpy()
    residual = masked_median(distance, fused_weight > 0).cpu().numpy()
    if not posed.all():
        rotation, centre = _interpolate_unposed(rotation, centre, posed)
    return FramePoses(rotation, centre, posed, fit_share, residual)

"""The aligner's closed-form start: windows sampled on a solver grid, per-window cameras, window chaining."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .align_solvers import affine_fit_l1, cauchy_weights, masked_median, similarity_fit
from .errors import Geo4DError
from .modalities import (
    decode_disparity,
    decode_point_map,
    line_intersection,
    ray_trajectory_from_maps,
    rotation_and_focal_from_directions,
)
from .prediction import WindowPrediction

SOLVER_DTYPE = torch.float64
CHAIN_ROBUST_STEPS = 6
CAMERA_BLOCK_POINTS = 1 << 20


@dataclass
class SolverGrid:
    """All windows sampled on one regular pixel subgrid, decoded, in float64 (the solve is small).

    points [N, L, P, 3] decoded-frame points; weights [N, L, P] confidence (0 where invalid);
    disparity [N, L, P] (D'+1)/2 with disparity_valid; direction, moment [N, L, P, 3] ray maps;
    pixels [P, 2] pixel centres (u, v) of the samples; centre (cx, cy); shape (h, w) of the subgrid;
    frames_t [N, L] frame of each slot; window_weight [N] 1 or 0 (empty); nearest_rows [H], nearest_cols [W]:
    the subgrid row/column nearest to each full-resolution row/column.
    """

    points: torch.Tensor
    weights: torch.Tensor
    disparity: torch.Tensor
    disparity_valid: torch.Tensor
    direction: torch.Tensor
    moment: torch.Tensor
    pixels: torch.Tensor
    centre: tuple[float, float]
    shape: tuple[int, int]
    frames_t: torch.Tensor
    window_weight: torch.Tensor
    nearest_rows: torch.Tensor
    nearest_cols: torch.Tensor

    @property
    def offsets(self) -> torch.Tensor:
        """[1, P, 2] pixel centres minus the principal point."""
        return (self.pixels - torch.tensor(self.centre, dtype=self.pixels.dtype, device=self.pixels.device))[
            None
        ]

    def scene_size(self) -> float:
        """Median distance of valid points from their window's centroid (decoded units), for relative misfits."""
        centroid = (self.points * self.weights[..., None]).sum((1, 2)) / self.weights.sum((1, 2)).clamp_min(
            1e-30
        )[:, None]
        spread = (self.points - centroid[:, None, None]).norm(dim=-1)
        value = float(masked_median(spread.reshape(1, -1), (self.weights > 0).reshape(1, -1))[0])
        return value if math.isfinite(value) and value > 0 else 1.0

    def fit_disparity(
        self,
        inverse_depth: torch.Tensor,
        usable: torch.Tensor,
        robust: torch.Tensor,
        window_weight: torch.Tensor,
    ):
        """Per-window (alpha [N], beta [N]) with alpha (D'+1)/2 + beta ~ 1/depth, an L1 fit.

        inverse_depth, usable: [T, P] fused inverse depth of the solver pixels; robust [N, L, P] weights.
        """
        count = self.weights.shape[0]
        target = inverse_depth[self.frames_t].reshape(count, -1)
        weights = (robust * self.disparity_valid * usable[self.frames_t]).reshape(count, -1)
        alpha, beta = affine_fit_l1(self.disparity.reshape(count, -1), target, weights)
        empty = (weights.sum(-1) <= 0) | (window_weight <= 0)
        return torch.where(empty, torch.zeros_like(alpha), alpha), torch.where(
            empty, torch.zeros_like(beta), beta
        )


def sample_windows(predictions: list[WindowPrediction], frames: np.ndarray, config) -> SolverGrid:
    """Decode every window on a regular subgrid of at most config.solver_pixels pixels per frame."""
    _, height, width = predictions[0].point_confidence.shape
    step = max(1, math.ceil(math.sqrt(height * width / config.solver_pixels)))
    device = predictions[0].point_map.device
    rows = torch.arange(step // 2, height, step, device=device)
    cols = torch.arange(step // 2, width, step, device=device)

    def take(name: str) -> torch.Tensor:
        stacked = torch.stack([getattr(p, name)[:, rows][:, :, cols] for p in predictions]).to(SOLVER_DTYPE)
        return stacked.reshape(*stacked.shape[:2], len(rows) * len(cols), *stacked.shape[4:])

    points, valid = decode_point_map(take("point_map"), config.sky_tolerance)
    confidence = torch.nan_to_num(take("point_confidence"), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    disparity, disparity_valid = decode_disparity(take("disparity"))
    direction = take("ray_direction")
    moment = take("ray_moment")
    rays_ok = (
        torch.isfinite(direction).all(-1) & torch.isfinite(moment).all(-1) & (direction.norm(dim=-1) > 1e-6)
    )
    weights = confidence * valid * rays_ok
    v, u = torch.meshgrid(rows.to(SOLVER_DTYPE) + 0.5, cols.to(SOLVER_DTYPE) + 0.5, indexing="ij")
    window_weight = (weights.sum((1, 2)) > 0).to(SOLVER_DTYPE)
    return SolverGrid(
        points=points,
        weights=weights,
        disparity=disparity,
        disparity_valid=disparity_valid & valid,
        direction=torch.where(rays_ok[..., None], direction, torch.zeros_like(direction)),
        moment=torch.where(rays_ok[..., None], moment, torch.zeros_like(moment)),
        pixels=torch.stack([u, v], dim=-1).reshape(-1, 2),
        centre=(width / 2, height / 2),
        shape=(len(rows), len(cols)),
        frames_t=torch.from_numpy(frames).to(device),
        window_weight=window_weight,
        nearest_rows=(torch.arange(height, device=device)[:, None] - rows[None, :]).abs().argmin(1),
        nearest_cols=(torch.arange(width, device=device)[:, None] - cols[None, :]).abs().argmin(1),
    )


@dataclass
class WindowCameras:
    """Per window and slot, in the window's decoded frame: rotation [N, L, 3, 3] (camera -> window),
    centre [N, L, 3]; point_focal, ray_focal [N, L] in pixels."""

    rotation: torch.Tensor
    centre: torch.Tensor
    point_focal: torch.Tensor
    ray_focal: torch.Tensor


def _slot_cameras(points, direction, moment, weights, pixels, centre_px, config):
    """window_cameras for a block of windows: (rotation, centre, point focal, ray focal)."""
    centre = line_intersection(points, direction, weights)
    unit = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    robust = weights
    for _ in range(2):
        offset = centre[..., None, :] - points
        distance = (offset - (offset * unit).sum(-1, keepdim=True) * unit).norm(dim=-1)
        robust = cauchy_weights(distance, weights, config.robust_width)
        centre = line_intersection(points, direction, robust)
    rotation, focal = rotation_and_focal_from_directions(
        points - centre[..., None, :], pixels.expand(*points.shape[:-1], 2), centre_px, robust
    )
    trajectory = ray_trajectory_from_maps(direction, moment, pixels, weights, centre_px)
    return rotation, centre, focal, trajectory.focals


def window_cameras(grid: SolverGrid, config) -> WindowCameras:
    """Cameras of every window slot: centre where the predicted rays through the predicted points meet
    (robustly reweighted), rotation and focal from the point directions seen from that centre.

    Windows are processed in blocks of about CAMERA_BLOCK_POINTS samples to bound memory on long clips.
    """
    count, length, pixels = grid.weights.shape
    block = max(1, CAMERA_BLOCK_POINTS // (length * pixels))
    parts = [
        _slot_cameras(
            grid.points[first : first + block],
            grid.direction[first : first + block],
            grid.moment[first : first + block],
            grid.weights[first : first + block],
            grid.pixels,
            grid.centre,
            config,
        )
        for first in range(0, count, block)
    ]
    return WindowCameras(*(torch.cat(values) for values in zip(*parts, strict=True)))


def pair_residuals(grid: SolverGrid, frames: np.ndarray, config) -> torch.Tensor:
    """[N] misfit of each window with its best consecutive neighbour (decoded units; inf with none).

    Consecutive windows are Umeyama-fitted over their shared frames; the misfit is the weighted median
    point distance after the fit, in the target window's units.
    """
    count = frames.shape[0]
    device = grid.points.device
    result = torch.full((count,), float("inf"), dtype=SOLVER_DTYPE, device=device)
    if count < 2:
        return result
    pixels = grid.points.shape[2]
    pairs = []
    for window in range(count - 1):
        _, slots_a, slots_b = np.intersect1d(frames[window], frames[window + 1], return_indices=True)
        pairs.append((slots_a, slots_b))
    width = max(len(a) for a, _ in pairs)
    if width == 0:
        return result
    index_a = torch.zeros(count - 1, width, dtype=torch.long, device=device)
    index_b = torch.zeros_like(index_a)
    present = torch.zeros(count - 1, width, dtype=SOLVER_DTYPE, device=device)
    for pair, (slots_a, slots_b) in enumerate(pairs):
        index_a[pair, : len(slots_a)] = torch.from_numpy(slots_a)
        index_b[pair, : len(slots_b)] = torch.from_numpy(slots_b)
        present[pair, : len(slots_a)] = 1
    windows = torch.arange(count - 1, device=device)[:, None]
    source = grid.points[windows, index_a].reshape(count - 1, width * pixels, 3)
    target = grid.points[windows + 1, index_b].reshape(count - 1, width * pixels, 3)
    base = (grid.weights[windows, index_a] * grid.weights[windows + 1, index_b] * present[..., None]).reshape(
        count - 1, -1
    )
    weights = base
    for _ in range(CHAIN_ROBUST_STEPS):
        scale, rotation, translation = similarity_fit(source, target, weights)
        moved = scale[:, None, None] * source @ rotation.transpose(-1, -2) + translation[:, None]
        distance = (moved - target).norm(dim=-1)
        weights = cauchy_weights(distance, base, config.robust_width)
    misfit = masked_median(distance, base > 0)
    misfit = torch.nan_to_num(misfit, nan=float("inf"))
    result[:-1] = torch.minimum(result[:-1], misfit)
    result[1:] = torch.minimum(result[1:], misfit)
    return result


def chain_windows(grid: SolverGrid, frames: np.ndarray, window_weight: torch.Tensor, num_frames: int, config):
    """Similarities (scale [N], rotation [N, 3, 3], translation [N, 3]) taking each window into one world.

    The first trusted window defines the world; each next window (trusted ones first, in order) is fitted
    by robust weighted Umeyama to the points fused so far on the frames they share.
    """
    count, length, pixels = grid.weights.shape
    device = grid.points.device
    scale = torch.ones(count, dtype=SOLVER_DTYPE, device=device)
    rotation = torch.eye(3, dtype=SOLVER_DTYPE, device=device).repeat(count, 1, 1)
    translation = torch.zeros(count, 3, dtype=SOLVER_DTYPE, device=device)
    usable = [w for w in range(count) if window_weight[w] > 0]
    pending = sorted(usable, key=lambda w: (float(window_weight[w]) <= 0.5, w))
    summed = torch.zeros(num_frames, pixels, 3, dtype=SOLVER_DTYPE, device=device)
    total = torch.zeros(num_frames, pixels, dtype=SOLVER_DTYPE, device=device)
    frame_index = torch.from_numpy(frames).to(device)

    def add(window: int) -> None:
        world = scale[window] * grid.points[window] @ rotation[window].T + translation[window]
        weight = grid.weights[window] * window_weight[window]
        summed.index_add_(0, frame_index[window], world * weight[..., None])
        total.index_add_(0, frame_index[window], weight)

    add(pending.pop(0))
    while pending:
        for window in pending:
            seen = total[frame_index[window]]
            base = grid.weights[window] * (seen > 0)
            if int((base > 0).sum()) >= config.min_frame_points:
                break
        else:
            raise Geo4DError(
                "Some windows share no frames with the others, so they cannot be aligned. Use a smaller stride."
            )
        target = (summed[frame_index[window]] / seen.clamp_min(1e-30)[..., None]).reshape(1, -1, 3)
        source = grid.points[window].reshape(1, -1, 3)
        weights = base.reshape(1, -1)
        for _ in range(CHAIN_ROBUST_STEPS):
            fitted = similarity_fit(source, target, weights)
            moved = fitted[0][:, None, None] * source @ fitted[1].transpose(-1, -2) + fitted[2][:, None]
            weights = cauchy_weights((moved - target).norm(dim=-1), base.reshape(1, -1), config.robust_width)
        scale[window], rotation[window], translation[window] = fitted[0][0], fitted[1][0], fitted[2][0]
        pending.remove(window)
        add(window)
    return scale, rotation, translation

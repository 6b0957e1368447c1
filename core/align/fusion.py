"""Windows in one world: robust per-frame fusion of their points, per-window similarity refits, garbage windows.

A window's similarity (scale [N], rotation [N, 3, 3], translation [N, 3]) maps its decoded frame into the
world; a slot is one frame of one window; P is the number of solver pixels per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import GARBAGE_WEIGHT, AlignConfig
from .depth import slot_positions
from .initial import SolverGrid
from .solvers import cauchy_weights, masked_median, similarity_fit

Similarity = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Fusion:
    """The windows placed in one world: their similarity, the fused per-frame points [T, P, 3] and weight
    sums [T, P], the slots' robust weights [N, L, P] and the windows' world points [N, L, P, 3]."""

    similarity: Similarity
    fused: torch.Tensor
    fused_weight: torch.Tensor
    robust: torch.Tensor
    world: torch.Tensor


def fuse_frames(
    values: torch.Tensor, weights: torch.Tensor, frames: torch.Tensor, num_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted per-frame mean of slot values [N, L, P, C] -> ([T, P, C], weight sums [T, P])."""
    index = frames.reshape(-1)
    total = torch.zeros(num_frames, *weights.shape[2:], dtype=weights.dtype, device=weights.device)
    total.index_add_(0, index, weights.reshape(-1, *weights.shape[2:]))
    summed = torch.zeros(num_frames, *values.shape[2:], dtype=values.dtype, device=values.device)
    summed.index_add_(0, index, (values * weights[..., None]).reshape(-1, *values.shape[2:]))
    return summed / total.clamp_min(1e-30)[..., None], total


def apply_similarity(
    scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, points: torch.Tensor
) -> torch.Tensor:
    """Per-window similarities ([N], [N, 3, 3], [N, 3]) applied to points [N, ..., 3]."""
    shape = points.shape
    flat = points.reshape(shape[0], -1, 3)
    moved = scale[:, None, None] * torch.einsum("nij,npj->npi", rotation, flat) + translation[:, None]
    return moved.reshape(shape)


def _robust_fuse(
    grid: SolverGrid, world, window_weight, slot_centre, layout, num_frames: int, config: AlignConfig
):
    """Per-frame fused world points [T, P, 3] that outlier pixels cannot drag.

    Each frame starts from the coordinate-wise median over the trusted windows that see it; every slot
    pixel is then weighted by its confidence times a Cauchy weight of its distance from that median
    (relative to its depth), and the fused point is the weighted mean. Returns (fused, weight sums [T, P],
    slot weights [N, L, P]).
    """
    positions, most = layout
    frames = grid.frames_t
    trusted = (window_weight > 0.5)[:, None, None] & (grid.weights > 0)
    active = positions >= 0
    buffer = torch.full(
        (num_frames, most, *world.shape[2:]), float("nan"), dtype=world.dtype, device=world.device
    )
    buffer[frames[active], positions[active]] = torch.where(trusted[..., None], world, float("nan"))[active]
    median = torch.nanmedian(buffer, dim=1).values
    plain, _ = fuse_frames(world, grid.weights * window_weight[:, None, None], frames, num_frames)
    median = torch.where(torch.isnan(median), plain, median)
    target = median[frames]
    depth = (target - slot_centre[:, :, None]).norm(dim=-1).clamp_min(1e-12)
    relative = (world - target).norm(dim=-1) / depth
    pooled = cauchy_weights(
        relative.reshape(1, -1), trusted.reshape(1, -1).to(world.dtype), config.robust_width
    )
    robust = torch.where(
        trusted, pooled.reshape(relative.shape) * grid.weights, grid.weights * GARBAGE_WEIGHT
    )
    fused, total = fuse_frames(world, robust, frames, num_frames)
    return fused, total, robust


def refine_windows(
    grid: SolverGrid,
    similarity: Similarity,
    window_weight,
    slot_centres,
    num_frames: int,
    config: AlignConfig,
) -> Fusion:
    """Alternate robustly fused per-frame points and per-window Umeyama refits.

    slot_centres [N, L, 3]: the slots' camera centres in their windows' frames (for relative residuals).
    """
    count = grid.weights.shape[0]
    layout = slot_positions(grid.frames_t.cpu().numpy(), window_weight.cpu().numpy() > 0, num_frames)
    layout = (torch.from_numpy(layout[0]).to(grid.frames_t.device), layout[1])
    for _ in range(config.rounds):
        world = apply_similarity(*similarity, grid.points)
        fused, fused_weight, robust = _robust_fuse(
            grid,
            world,
            window_weight,
            apply_similarity(*similarity, slot_centres),
            layout,
            num_frames,
            config,
        )
        fit_weight = (robust * (fused_weight[grid.frames_t] > 0)).reshape(count, -1)
        similarity = similarity_fit(
            grid.points.reshape(count, -1, 3), fused[grid.frames_t].reshape(count, -1, 3), fit_weight
        )
    world = apply_similarity(*similarity, grid.points)
    fused, fused_weight, robust = _robust_fuse(
        grid, world, window_weight, apply_similarity(*similarity, slot_centres), layout, num_frames, config
    )
    return Fusion(similarity, fused, fused_weight, robust, world)


def frame_disagreement(world, fused, grid, slot_centre, window_weight, num_frames: int):
    """Per frame, the largest misfit of a trusted window's points there ([T] numpy, NaN where no trusted
    window has points), and the median slot misfit; a slot's misfit is the median distance of its world
    points [N, L, P, 3] from the fused ones [T, P, 3], relative to their distance from its camera."""
    residual = (world - fused[grid.frames_t]).norm(dim=-1)
    depth = (world - slot_centre[:, :, None]).norm(dim=-1).clamp_min(1e-12)
    misfit = masked_median(residual / depth, grid.weights > 0).cpu().numpy()
    trusted = np.isfinite(misfit) & (window_weight > 0.5).cpu().numpy()[:, None]
    largest = np.full(num_frames, np.nan)
    frames = grid.frames_t.cpu().numpy()[trusted]
    np.fmax.at(largest, frames, misfit[trusted])
    typical = float(np.median(misfit[trusted])) if trusted.any() else 0.0
    return largest, typical


def window_misfit(world, fused, frames, weights, size) -> torch.Tensor:
    """[N] median distance of each window's world points from the fused points, relative to scene size."""
    residual = (world - fused[frames]).norm(dim=-1).reshape(world.shape[0], -1)
    return masked_median(residual, (weights > 0).reshape(world.shape[0], -1)) / size


def flag_garbage(misfit: torch.Tensor, window_weight: torch.Tensor, config: AlignConfig) -> torch.Tensor:
    """[N] bool: windows whose misfit is far above the typical window's (needs 3 or more usable windows)."""
    usable = (window_weight > 0) & torch.isfinite(misfit)
    if int(usable.sum()) < 3:
        return torch.zeros_like(usable)
    typical = misfit[usable].median()
    threshold = max(config.garbage_ratio * float(typical), config.garbage_floor)
    return usable & (misfit > threshold) & (not math.isnan(threshold))

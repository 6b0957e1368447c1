"""The aligner's per-window cameras and the shared focal, from point maps and ray maps independently.

Each window slot (one frame seen by one window) gets three views of its camera, in the window's
decoded frame: a projection fit of its point map alone (centre, rotation, focal); the ray maps'
trajectory (centres from the Plücker moments, focal from the directions); and the directions of the
points seen from the combined centre (rotation and focal). Ray maps are trusted only up to a
per-window similarity, so their centres are mapped onto the point-map centres before the two are
averaged, each weighted by how well it agrees with the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..modalities import line_intersection, ray_trajectory_from_maps, rotation_and_focal_from_directions
from .solvers import (
    cauchy_weights,
    masked_median,
    projection_fit,
    relative_ray_distance,
    similarity_fit,
    unit_rays,
)

CAMERA_BLOCK_POINTS = 1 << 20
PROJECTION_STEPS = 6
PROJECTION_POINTS = 1024
# Ray-map and point-map centres closer than this fraction of the scene depth count as agreeing.
CENTRE_AGREEMENT = 0.02
# Relative spread below which two focal families count as equally consistent (noise-free input).
FOCAL_SPREAD_FLOOR = 1e-3
# Focal families whose estimates differ by more than this (relative) are reported.
FOCAL_DISAGREEMENT = 0.03


@dataclass
class FocalEstimate:
    """The video's one focal (pixels) and what each family of estimates said: name -> (median focal in
    pixels, relative spread over windows, relative difference from the chosen focal)."""

    value: float
    families: dict[str, tuple[float, float, float]]

    def warnings(self) -> list[str]:
        """Messages when the families disagree with each other or among their windows."""
        messages = []
        for name, (median, spread, difference) in self.families.items():
            if abs(difference) > FOCAL_DISAGREEMENT:
                messages.append(
                    f"The {name} imply a focal of {median:.1f} px, {100 * difference:+.1f} % from the "
                    f"{self.value:.1f} px used; the focal (and the scale of depth along the path) is uncertain."
                )
            elif spread > FOCAL_DISAGREEMENT:
                messages.append(
                    f"The windows' {name} disagree on the focal by {100 * spread:.1f} % (median "
                    f"{median:.1f} px); the focal is uncertain."
                )
        return messages


@dataclass
class WindowCameras:
    """Per window and slot, in the window's decoded frame: rotation [N, L, 3, 3] (camera -> window),
    centre [N, L, 3]; projection_focal, point_focal, ray_focal [N, L] in pixels (NaN where unusable)."""

    rotation: torch.Tensor
    centre: torch.Tensor
    projection_focal: torch.Tensor
    point_focal: torch.Tensor
    ray_focal: torch.Tensor

    def shared_focal(self, windows: torch.Tensor) -> FocalEstimate:
        """The video's one focal from the estimates of `windows` (bool [N]).

        Families: the point maps' projection fits, the point directions seen from the combined centres,
        and the ray maps. Each family's per-window medians give a median and a spread (median absolute
        log deviation); the focal is the families' medians weighted by the inverse square of their
        spreads, so a family whose windows agree with each other outweighs one whose windows scatter
        (a per-window ray-focal error makes the ray family scatter). NaN when nothing is usable.
        """
        names = {
            "point maps": self.projection_focal,
            "point directions": self.point_focal,
            "ray maps": self.ray_focal,
        }
        summaries, logs, weights = {}, [], []
        for name, estimates in names.items():
            per_window = _nan_median(estimates[windows])
            per_window = per_window[torch.isfinite(per_window) & (per_window > 0)]
            if per_window.numel():
                median = per_window.median()
                spread = float((per_window / median).log().abs().median()) if per_window.numel() > 1 else 0.0
                summaries[name] = (float(median), spread)
                logs.append(float(median.log()))
                weights.append(1.0 / (spread**2 + FOCAL_SPREAD_FLOOR**2))
        if not logs:
            return FocalEstimate(float("nan"), {})
        value = math.exp(sum(w * v for w, v in zip(weights, logs, strict=True)) / sum(weights))
        families = {
            name: (median, spread, median / value - 1) for name, (median, spread) in summaries.items()
        }
        return FocalEstimate(value, families)


def _nan_median(values: torch.Tensor) -> torch.Tensor:
    """[N] median over the last dim of [N, L], ignoring NaN and non-positive entries."""
    return torch.nanmedian(
        torch.where(values > 0, values, torch.full_like(values, float("nan"))), dim=-1
    ).values


def _moment_centres(
    ray_centres, point_centres, support, robust_width: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-map centres [B, L, 3] mapped onto the point-map centres by a robust per-window similarity,
    and each slot's distance [B, L] between the mapped and the point-map centre."""
    weights = support
    for _ in range(3):
        scale, rotation, translation = similarity_fit(ray_centres, point_centres, weights)
        mapped = scale[:, None, None] * ray_centres @ rotation.transpose(-1, -2) + translation[:, None]
        distance = (mapped - point_centres).norm(dim=-1)
        weights = cauchy_weights(distance, support, robust_width)
    return mapped, distance


def _rays_through_points(points, direction, weights, robust_width: float):
    """Centre [B, 3] where the rays through the points [B, P, 3] meet, and weights [B, P] that damp the
    points far from that centre's lines (outliers)."""
    centre = line_intersection(points, direction, weights)
    unit = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    robust = weights
    for _ in range(2):
        offset = centre[..., None, :] - points
        distance = (offset - (offset * unit).sum(-1, keepdim=True) * unit).norm(dim=-1)
        robust = cauchy_weights(distance, weights, robust_width)
        centre = line_intersection(points, direction, robust)
    return centre, robust


def _robust_cost(relative: torch.Tensor, weights: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """[B] Cauchy cost of relative ray distances [B, P] at a common scale [B], per unit weight."""
    cost = (weights * (relative / scale[:, None]).square().log1p()).sum(-1)
    return cost / weights.sum(-1).clamp_min(1e-30)


def _point_map_cameras(points, offsets, weights, ray_direction, centre_px, robust_width: float):
    """Projection fits of slot point maps [B, P, 3] from two starts, the DLT and the camera at the centre
    where the rays through the points meet; each slot keeps the fit with the lower robust cost. The fits
    use at most PROJECTION_POINTS evenly strided points per slot (plenty for seven parameters).

    Returns centre [B, 3], focal [B] (NaN where no fit worked) and relative ray distances [B, P].
    """
    line_centre, start_weights = _rays_through_points(points, ray_direction, weights, robust_width)
    pixels = (offsets + torch.tensor(centre_px).to(offsets)).expand_as(points[..., :2])
    rotation, focal = rotation_and_focal_from_directions(
        points - line_centre[:, None], pixels, centre_px, start_weights
    )
    sample = torch.arange(
        0, points.shape[1], max(1, points.shape[1] // PROJECTION_POINTS), device=points.device
    )
    subset = (points[:, sample], offsets[:, sample], weights[:, sample], start_weights[:, sample])
    fits = [
        projection_fit(*subset, robust_width, PROJECTION_STEPS, start)
        for start in (None, (rotation, line_centre, focal))
    ]
    scale = torch.minimum(*(masked_median(fit[3], subset[2] > 0) for fit in fits)).clamp_min(1e-9)
    costs = [
        torch.where(torch.isfinite(fit[2]), _robust_cost(fit[3], subset[2], scale), torch.inf) for fit in fits
    ]
    second = costs[1] < costs[0]
    rotation = torch.where(second[:, None, None], fits[1][0], fits[0][0])
    centre = torch.where(second[:, None], fits[1][1], fits[0][1])
    focal = torch.where(second, fits[1][2], fits[0][2])
    rays = unit_rays(offsets, torch.nan_to_num(focal, nan=1.0))
    relative = relative_ray_distance(points, rays.expand_as(points), rotation, centre)
    return centre, focal, relative


def _slot_cameras(points, direction, moment, weights, pixels, centre_px, config):
    """window_cameras for a block of windows: (rotation, centre, projection focal, point focal, ray focal)."""
    count, length, size, _ = points.shape
    offsets = pixels - torch.tensor(centre_px, dtype=pixels.dtype, device=pixels.device)
    fit_centre, fit_focal, relative = _point_map_cameras(
        points.reshape(-1, size, 3),
        offsets[None],
        weights.reshape(-1, size),
        direction.reshape(-1, size, 3),
        centre_px,
        config.robust_width,
    )
    fit_centre = fit_centre.reshape(count, length, 3)
    fit_focal = fit_focal.reshape(count, length)
    robust = cauchy_weights(relative, weights.reshape(-1, size), config.robust_width).reshape(weights.shape)
    trajectory = ray_trajectory_from_maps(direction, moment, pixels, weights, centre_px)
    fitted = torch.isfinite(fit_focal) & (weights.sum(-1) > 0)
    depth = masked_median(
        (points - fit_centre[:, :, None]).norm(dim=-1).reshape(count, -1), (weights > 0).reshape(count, -1)
    )
    centre = _combined_centres(trajectory.centres, fit_centre, fitted, depth, config.robust_width)
    rotation, focal = rotation_and_focal_from_directions(
        points - centre[..., None, :], pixels.expand(count, length, -1, -1), centre_px, robust
    )
    return rotation, centre, fit_focal, focal, trajectory.focals


def _combined_centres(ray_centres, fit_centres, fitted, depth, robust_width: float):
    """Slot centres [B, L, 3] from the point-map fits [B, L, 3] and the ray maps' centres mapped onto them.

    Where the two agree (within robust_width robust deviations of the window's mapping, or
    CENTRE_AGREEMENT x the scene depth [B]) their mean. A slot whose fit strays takes the ray centre
    when the window's other slots confirm the ray trajectory (the mapping's robust scatter is under that
    tolerance), else keeps its fit. Slots without a fit (`fitted` False) take the ray centre.
    """
    mapped, distance = _moment_centres(ray_centres, fit_centres, fitted.to(ray_centres.dtype), robust_width)
    sigma = 1.4826 * masked_median(distance, fitted)
    tolerance = CENTRE_AGREEMENT * depth
    agree = (distance <= torch.maximum(robust_width * sigma, tolerance)[:, None]) & fitted
    confirmed = (sigma <= tolerance)[:, None, None]
    stray = torch.where(confirmed, mapped, fit_centres)
    centre = torch.where(agree[..., None], (mapped + fit_centres) / 2, stray)
    return torch.where(fitted[..., None], centre, mapped)


def window_cameras(grid, config) -> WindowCameras:
    """Cameras of every window slot (see the module docstring), robustly weighted against outliers.

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

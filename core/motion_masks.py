"""Per-pixel motion scores of an aligned result: does each pixel's world point stay where other frames look?

A pixel of frame t is static when its world point agrees with what frames t +- k see along their own rays.
The point is projected into frame s with s's camera; s's depth map there is the surface s sees. If s sees
clearly farther than the point (the ray passes through where the point was), the point is not there at
time s: evidence of motion. If s sees nearer, something hides the point (occlusion): no evidence either
way, so occlusion never flags motion. The score is the mean of the two strongest neighbours' evidence: one
neighbour that clearly sees through the point, or two that partly do, make it moving. numpy only: results written by the engine and read by Blender carry these scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .camera import invert_rigid, unproject_depth

logger = logging.getLogger(__name__)

# Bytes of a stored score: 0..255 for 0..1.
SCORE_LEVELS = 255


@dataclass(frozen=True)
class MotionConfig:
    """How motion is scored.

    offsets: frame distances k of the neighbours t - k and t + k (positive, increasing); far ones see
        slow motion, near ones keep working where the camera turns away quickly.
    tolerance: relative depth gap (of the point's depth in the neighbour) still counted as agreement;
        the evidence grows from 0 at `tolerance` to 1 at twice it.
    threshold: score (0..1) from which a pixel counts as moving.
    min_neighbours: neighbours that must see the point for it to get a score (else 0: unknown = static).
    search_radius: the neighbour's nearest surface is taken over (2 r + 1)^2 pixels around the projection,
        so that a static edge does not see past itself into the background.
    near_static_baseline: a camera whose positions span less than this share of the median depth
        cannot see parallax; the result then carries a warning.
    """

    offsets: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    tolerance: float = 0.02
    threshold: float = 0.5
    min_neighbours: int = 2
    search_radius: int = 1
    near_static_baseline: float = 0.05

    def __post_init__(self) -> None:
        offsets = tuple(self.offsets)
        if (
            not offsets
            or any(not isinstance(k, int) or k < 1 for k in offsets)
            or len(set(offsets)) != len(offsets)
        ):
            raise ValueError(f"MotionConfig.offsets = {self.offsets!r}; give distinct whole numbers >= 1")
        object.__setattr__(self, "offsets", offsets)
        if not 0 < self.tolerance < 1:
            raise ValueError(f"MotionConfig.tolerance = {self.tolerance}; it must be in (0, 1)")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"MotionConfig.threshold = {self.threshold}; it must be in (0, 1]")
        if not isinstance(self.min_neighbours, int) or not 1 <= self.min_neighbours <= 2 * len(offsets):
            raise ValueError(
                f"MotionConfig.min_neighbours = {self.min_neighbours}; it must be in 1..{2 * len(offsets)}"
            )
        if not isinstance(self.search_radius, int) or not 0 <= self.search_radius <= 8:
            raise ValueError(f"MotionConfig.search_radius = {self.search_radius}; it must be in 0..8")
        if not 0 <= self.near_static_baseline < 1:
            raise ValueError(
                f"MotionConfig.near_static_baseline = {self.near_static_baseline}; it must be in [0, 1)"
            )


@dataclass
class MotionMasks:
    """Motion scores of a result's pixels.

    score: [T, H, W] float32 in [0, 1], 0 where the pixel is static or unknown (and where it carries no point).
    threshold: score from which a pixel counts as moving.
    camera_baseline: the camera positions' span (bounding-box diagonal) over the median depth.
    warnings: what the user should know (a camera too still to see parallax).
    """

    score: np.ndarray
    threshold: float
    camera_baseline: float
    warnings: list[str]

    def moving(self) -> np.ndarray:
        """[T, H, W] bool: the pixels that count as moving."""
        return self.score >= self.threshold

    def stored_scores(self) -> np.ndarray:
        """[T, H, W] uint8, 0..255 for scores 0..1 (what motion.npz holds)."""
        return np.round(np.clip(self.score, 0.0, 1.0) * SCORE_LEVELS).astype(np.uint8)


def scores_from_stored(stored: np.ndarray) -> np.ndarray:
    """Scores [T, H, W] float32 in [0, 1] from their uint8 storage."""
    return stored.astype(np.float32) / SCORE_LEVELS


def nearest_surface(depth: np.ndarray, radius: int) -> np.ndarray:
    """[..., H, W] the smallest positive depth within `radius` pixels of each pixel; inf where there is none."""
    seen = np.where(depth > 0, depth, np.inf)
    if radius == 0:
        return seen
    height, width = depth.shape[-2:]
    pad = [(0, 0)] * (depth.ndim - 2) + [(radius, radius), (radius, radius)]
    padded = np.pad(seen, pad, constant_values=np.inf)
    nearest = np.full_like(seen, np.inf)
    for row in range(2 * radius + 1):
        for column in range(2 * radius + 1):
            np.minimum(nearest, padded[..., row : row + height, column : column + width], out=nearest)
    return nearest


def camera_baseline(camera_to_world: np.ndarray, depth: np.ndarray) -> float:
    """The span of the camera positions (bounding-box diagonal) over the median positive depth."""
    positive = depth[np.isfinite(depth) & (depth > 0)]
    if not len(positive):
        return 0.0
    span = np.linalg.norm(np.ptp(camera_to_world[:, :3, 3], axis=0))
    return float(span / np.median(positive))


def motion_scores(
    camera_to_world: np.ndarray,
    intrinsics,
    depth: np.ndarray,
    valid: np.ndarray,
    config: MotionConfig | None = None,
) -> MotionMasks:
    """Score every pixel's motion from cameras [T, 4, 4] (OpenCV camera to world), pinhole `intrinsics`
    (fx fy cx cy in pixels), depth [T, H, W] (camera z) and valid [T, H, W] (pixels that carry a point).

    Loops over frames and neighbour offsets; every step is vectorised over the frame's pixels.
    """
    config = config or MotionConfig()
    frames, height, width = depth.shape
    depth = np.where(valid, np.nan_to_num(depth), 0.0)
    nearest = nearest_surface(depth, config.search_radius)
    world_to_camera = invert_rigid(camera_to_world)
    k = intrinsics
    score = np.zeros(depth.shape, dtype=np.float32)
    for frame in range(frames):
        rows, cols = np.nonzero(valid[frame])
        if not len(rows):
            continue
        local = unproject_depth(depth[frame], k.fx, k.fy, k.cx, k.cy)[rows, cols]
        world = local @ camera_to_world[frame, :3, :3].T + camera_to_world[frame, :3, 3]
        strongest, runner_up = np.zeros(len(rows)), np.zeros(len(rows))
        seen_by = np.zeros(len(rows), dtype=np.int64)
        for offset in config.offsets:
            for other in (frame - offset, frame + offset):
                if not 0 <= other < frames:
                    continue
                point_evidence, informative = _neighbour_evidence(
                    world, world_to_camera[other], nearest[other], k, config.tolerance
                )
                runner_up = np.maximum(runner_up, np.minimum(strongest, point_evidence))
                strongest = np.maximum(strongest, point_evidence)
                seen_by += informative
        enough = seen_by >= config.min_neighbours
        score[frame, rows[enough], cols[enough]] = (strongest[enough] + runner_up[enough]) / 2
    baseline = camera_baseline(camera_to_world, depth)
    warnings = []
    if baseline < config.near_static_baseline:
        warnings.append(
            f"The camera barely moves (its positions span {100 * baseline:.1f} % of the median depth): the "
            "motion masks see only depth changes along each ray, so things moving at the depth of what lies "
            "behind them count as static. Check the static cloud before relying on the split."
        )
    return MotionMasks(score, config.threshold, baseline, warnings)


def _neighbour_evidence(
    world: np.ndarray, world_to_camera: np.ndarray, nearest: np.ndarray, k, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Motion evidence [N] in [0, 1] of world points [N, 3] seen from one neighbour, and which points [N]
    that neighbour could judge (in view, a surface near the projection, not hidden behind it)."""
    height, width = nearest.shape
    camera = world @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        column = np.floor(k.fx * camera[:, 0] / z + k.cx)
        row = np.floor(k.fy * camera[:, 1] / z + k.cy)
    inside = (z > 0) & (column >= 0) & (column < width) & (row >= 0) & (row < height)
    observed = np.full(len(z), np.inf)
    observed[inside] = nearest[row[inside].astype(np.int64), column[inside].astype(np.int64)]
    with np.errstate(invalid="ignore"):
        gap = (observed - z) / z
    informative = inside & np.isfinite(observed) & (gap >= -tolerance)
    evidence = np.where(informative, np.clip(gap / tolerance - 1.0, 0.0, 1.0), 0.0)
    return evidence, informative

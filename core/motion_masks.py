"""Per-pixel motion scores of an aligned result: does each pixel's world point stay where other frames look?

A pixel of frame t is static when its world point agrees with what frames t +- k see along their own rays.
The point is projected into frame s with s's camera; the nearest of the four pixel centres around the
projection is the surface s sees there. If s sees clearly farther than the point (the ray passes through
where the point was), the point is not there at time s: evidence of motion. If s sees nearer, something
hides the point (occlusion): no evidence either way, so occlusion never flags motion. The score is the mean
of the two strongest neighbours' evidence: one neighbour that clearly sees through the point, or two that
partly do, make it moving.

"Clearly" follows the result's own depth noise, measured between consecutive frames (the robust spread of
the depth a frame predicts for its neighbour's points): exact depth is judged at 1 %, a noisy network's
depth at a few times its noise, so noise alone does not flag motion. numpy only: results written by the
engine and read by Blender carry these scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .camera import invert_rigid, unproject_depth
from .errors import SettingError
from .limits import check_integer, check_number

logger = logging.getLogger(__name__)

# Bytes of a stored score: 0..255 for 0..1.
SCORE_LEVELS = 255
# The largest relative depth gap that may still count as agreement.
MAX_TOLERANCE = 0.5
TOLERANCE_RANGE = f"a number in (0, {MAX_TOLERANCE}]"
# Frames whose moving regions grow at once (memory follows the chunk, not the clip).
GROWTH_CHUNK_FRAMES = 16


@dataclass(frozen=True)
class MotionConfig:
    """How motion is scored.

    offsets: frame distances k of the neighbours t - k and t + k (positive, increasing); far ones see
        slow motion, near ones keep working where the camera turns away quickly.
    tolerance: relative depth gap (of the point's depth in the neighbour) still counted as agreement; the
        evidence grows from 0 at `tolerance` to 1 at twice it. None: measured from the result's depth noise
        (`noise_multiple` times its robust spread, at least `min_tolerance`).
    min_tolerance, noise_multiple: the measured tolerance's floor and multiple of the noise.
    threshold: score (0..1) from which a pixel counts as moving.
    growth: how many pixels moving regions grow into pixels of the same surface (depth within the
        tolerance of a moving neighbour): a face sliding within its own plane shows motion only near its
        edges, and this closes the gaps; more pixels would leak through contacts (a box on the floor) into
        the static set. 0 keeps each pixel's own evidence only.
    min_neighbours: neighbours that must see the point for it to get a score (else 0: unknown = static).
    near_static_baseline: a camera whose positions span less than this share of the median depth
        cannot see parallax; the result then carries a warning.
    """

    offsets: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    tolerance: float | None = None
    min_tolerance: float = 0.01
    noise_multiple: float = 2.5
    threshold: float = 0.25
    growth: int = 4
    min_neighbours: int = 2
    near_static_baseline: float = 0.05

    def __post_init__(self) -> None:
        owner = type(self).__name__
        offsets = tuple(self.offsets)
        if (
            not offsets
            or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in offsets)
            or len(set(offsets)) != len(offsets)
        ):
            raise SettingError(owner, "offsets", self.offsets, "distinct whole numbers >= 1")
        object.__setattr__(self, "offsets", offsets)
        if self.tolerance is not None:
            check_number(owner, "tolerance", self.tolerance, 0.0, MAX_TOLERANCE, TOLERANCE_RANGE, False)
        check_number(owner, "min_tolerance", self.min_tolerance, 0.0, MAX_TOLERANCE, TOLERANCE_RANGE, False)
        check_number(owner, "noise_multiple", self.noise_multiple, 1.0, 10.0, "a number in [1, 10]")
        check_number(owner, "threshold", self.threshold, 0.0, 1.0, "a number in (0, 1]", False)
        check_integer(owner, "growth", self.growth, 0, 64, " pixels")
        check_integer(owner, "min_neighbours", self.min_neighbours, 1, 2 * len(offsets))
        check_number(
            owner, "near_static_baseline", self.near_static_baseline, 0.0, 0.99, "a number in [0, 0.99]"
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
    frames = len(depth)
    depth = np.where(valid, np.nan_to_num(depth), 0.0)
    seen = np.where(depth > 0, depth, np.inf)
    world_to_camera = invert_rigid(camera_to_world)
    tolerance = agreement_tolerance(camera_to_world, intrinsics, depth, config)
    score = np.zeros(depth.shape, dtype=np.float32)
    for frame in range(frames):
        rows, cols, world = frame_world_points(camera_to_world[frame], intrinsics, depth[frame])
        strongest, runner_up = np.zeros(len(rows)), np.zeros(len(rows))
        seen_by = np.zeros(len(rows), dtype=np.int64)
        for offset in config.offsets:
            for other in (frame - offset, frame + offset):
                if not 0 <= other < frames:
                    continue
                point_evidence, informative = _neighbour_evidence(
                    world, world_to_camera[other], seen[other], intrinsics, tolerance
                )
                runner_up = np.maximum(runner_up, np.minimum(strongest, point_evidence))
                strongest = np.maximum(strongest, point_evidence)
                seen_by += informative
        enough = seen_by >= config.min_neighbours
        score[frame, rows[enough], cols[enough]] = (strongest[enough] + runner_up[enough]) / 2
    if config.growth:
        joined = grow_moving_regions(score >= config.threshold, depth, tolerance, config.growth)
        score[joined] = np.maximum(score[joined], config.threshold)
    baseline = camera_baseline(camera_to_world, depth)
    warnings = []
    if baseline < config.near_static_baseline:
        warnings.append(
            f"The camera barely moves (its positions span {100 * baseline:.1f} % of the median depth): the "
            "motion masks see only depth changes along each ray, so things moving at the depth of what lies "
            "behind them count as static. Check the static cloud before relying on the split."
        )
    return MotionMasks(score, config.threshold, baseline, warnings)


def grow_moving_regions(moving: np.ndarray, depth: np.ndarray, tolerance: float, steps: int) -> np.ndarray:
    """[T, H, W] bool: the pixels that moving regions reach in up to `steps` steps between 4-neighbours whose
    depths differ by at most `tolerance` (relative); a region grows only from pixels with at least two moving
    4-neighbours, so that a lone pixel flagged by noise stays alone."""
    reached = np.zeros_like(moving)
    for first in range(0, len(depth), GROWTH_CHUNK_FRAMES):
        chunk = slice(first, first + GROWTH_CHUNK_FRAMES)
        reached[chunk] = _grow(moving[chunk], depth[chunk], tolerance, steps)
    return reached


def _grow(moving: np.ndarray, depth: np.ndarray, tolerance: float, steps: int) -> np.ndarray:
    left, right, up, down = np.s_[:, :, :-1], np.s_[:, :, 1:], np.s_[:, :-1, :], np.s_[:, 1:, :]
    with np.errstate(invalid="ignore"):
        across = np.abs(depth[right] - depth[left]) <= tolerance * np.minimum(depth[right], depth[left])
        along = np.abs(depth[down] - depth[up]) <= tolerance * np.minimum(depth[down], depth[up])
    across &= (depth[right] > 0) & (depth[left] > 0)
    along &= (depth[down] > 0) & (depth[up] > 0)
    neighbours = np.zeros(moving.shape, dtype=np.int8)
    neighbours[right] += moving[left]
    neighbours[left] += moving[right]
    neighbours[down] += moving[up]
    neighbours[up] += moving[down]
    region = moving & (neighbours >= 2)
    for _ in range(steps):
        grown = region.copy()
        grown[right] |= region[left] & across
        grown[left] |= region[right] & across
        grown[down] |= region[up] & along
        grown[up] |= region[down] & along
        if np.array_equal(grown, region):
            break
        region = grown
    return region


def agreement_tolerance(
    camera_to_world, intrinsics, depth: np.ndarray, config: MotionConfig | None = None
) -> float:
    """The relative depth gap up to which two frames agree on a point: the config's, or measured from the
    result's own depth noise (depth [T, H, W], 0 where a pixel carries no point)."""
    config = config or MotionConfig()
    if config.tolerance is not None:
        return config.tolerance
    noise = depth_noise(camera_to_world, intrinsics, depth)
    tolerance = min(max(config.noise_multiple * noise, config.min_tolerance), MAX_TOLERANCE)
    logger.info(
        "Depth noise between neighbouring frames %.2f %%: tolerance %.2f %%.", 100 * noise, 100 * tolerance
    )
    return tolerance


def depth_noise(camera_to_world, intrinsics, depth, samples: int = 16) -> float:
    """The robust spread (1.4826 median absolute value) of the relative depth gap between up to `samples`
    frames' points and what the next frame sees there, where that frame's surface is smooth: the result's
    own depth noise, which the motion tolerance follows. Moving points are a minority and do not move it."""
    frames = len(depth)
    if frames < 2:
        return 0.0
    world_to_camera = invert_rigid(camera_to_world)
    seen = np.where(depth > 0, depth, np.inf)
    gaps = []
    for frame in np.unique(np.linspace(0, frames - 2, min(samples, frames - 1)).round().astype(int)):
        _, _, world = frame_world_points(camera_to_world[frame], intrinsics, depth[frame])
        z, corners, weights, inside = surrounding_depths(
            world, world_to_camera[frame + 1], seen[frame + 1], intrinsics
        )
        smooth = inside & np.isfinite(corners).all(axis=0)
        smooth[smooth] = corners[:, smooth].max(axis=0) <= 1.05 * corners[:, smooth].min(axis=0)
        observed = (weights[:, smooth] * corners[:, smooth]).sum(axis=0)
        gaps.append((observed - z[smooth]) / z[smooth])
    gaps = np.concatenate(gaps)
    return float(1.4826 * np.median(np.abs(gaps))) if len(gaps) else 0.0


def frame_world_points(camera_to_world: np.ndarray, k, depth: np.ndarray):
    """(rows [N], cols [N], world points [N, 3] float32) of one frame's pixels that carry a point."""
    rows, cols = np.nonzero(depth > 0)
    local = unproject_depth(depth, k.fx, k.fy, k.cx, k.cy)[rows, cols]
    world = local @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]
    return rows, cols, world.astype(np.float32)


def surrounding_depths(world: np.ndarray, world_to_camera: np.ndarray, seen: np.ndarray, k):
    """World points [N, 3] seen from one camera: their depth z [N] there, the depths [4, N] of the four pixel
    centres around each projection (inf where nothing was seen), their bilinear weights [4, N], and which
    points [N] project in front of the camera between the image's outer pixel centres."""
    height, width = seen.shape
    camera = world @ world_to_camera[:3, :3].T.astype(world.dtype) + world_to_camera[:3, 3].astype(
        world.dtype
    )
    z = camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = k.fx * camera[:, 0] / z + (k.cx - 0.5)
        y = k.fy * camera[:, 1] / z + (k.cy - 0.5)
    # x, y: positions among the pixel centres. Only projections between centres have four surrounding
    # depths; beyond the outer centres the surface would be extrapolated (on steep ground, half a pixel is
    # a few percent of depth).
    inside = (z > 0) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    x, y = np.where(inside, x, 0), np.where(inside, y, 0)
    left = np.minimum(x.astype(np.int64), max(width - 2, 0))
    top = np.minimum(y.astype(np.int64), max(height - 2, 0))
    across, down = x - left, y - top
    step_right, step_down = min(1, width - 1), width * min(1, height - 1)
    flat = seen.ravel()
    first = top * width + left
    corners = np.stack(
        [flat[first], flat[first + step_right], flat[first + step_down], flat[first + step_down + step_right]]
    )
    weights = np.stack([(1 - across) * (1 - down), across * (1 - down), (1 - across) * down, across * down])
    return z, corners, weights, inside


def _neighbour_evidence(
    world: np.ndarray, world_to_camera: np.ndarray, seen: np.ndarray, k, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Motion evidence [N] in [0, 1] of world points [N, 3] seen from one neighbour, and which points [N]
    that neighbour could judge (in view, a surface around the projection, not hidden behind it).

    The neighbour's surface is the nearest of the four pixel centres around the projection, so that a
    static edge does not see past itself into the background."""
    z, corners, _, inside = surrounding_depths(world, world_to_camera, seen, k)
    observed = np.where(inside, corners.min(axis=0), np.inf)
    with np.errstate(invalid="ignore"):
        gap = (observed - z) / z
    informative = inside & np.isfinite(observed) & (gap >= -tolerance)
    evidence = np.where(informative, np.clip(gap / tolerance - 1.0, 0.0, 1.0), 0.0)
    return evidence, informative

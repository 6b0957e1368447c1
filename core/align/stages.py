"""Multi-modal alignment: per-window Geo4D predictions -> one camera path, one shared focal, per-frame depth.

Structure (all closed-form steps, batched over windows and frames; see README "Alignment"):
1. Decode every window on a subsampled pixel grid (core.modalities).
2. Per window and frame, in the window's own frame (core.align.cameras): a pinhole camera fitted to the
   point map alone, ray-moment centres mapped onto those cameras, rotation and focal from the point
   directions, the ray maps' focal. The shared focal weighs the three focal families' medians by how
   well each agrees with itself (a joint refit with the poses drifts along the focal/depth ambiguity,
   so it is not refitted).
3. Garbage windows: consecutive windows are Umeyama-fitted over their shared frames; a window that
   fits none of its neighbours is down-weighted and reported.
4. Windows are chained into one world by weighted Umeyama fits against the points fused so far, then
   refined jointly: fuse per-frame world points (robust, confidence-weighted), refit every window's
   similarity to them, repeat.
5. Per-frame poses: object-space orthogonal iterations against the fused points, each centre solved
   exactly for its rotation, robustly reweighted.
6. Per-window disparity affine maps by an L1 fit to the fused inverse depth; full-resolution depth fuses
   every window's point-map depth and disparity depth per frame, robustly.
7. Trust (core.align.trust): a confidence per frame and warnings about jumps, disagreeing windows,
   low-confidence frames and disagreeing focal estimates.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import Geo4DError
from ..modalities import line_intersection
from ..prediction import WindowPrediction
from ..progress import CancelCheck, ProgressCallback, Reporter
from ..result import Intrinsics, Reconstruction
from .cameras import window_cameras
from .depth import dense_depth, slot_positions
from .initial import (
    SolverGrid,
    average_pair_similarities,
    chain_windows,
    fit_pairs,
    overlapping_pairs,
    pair_misfits,
    sample_windows,
)
from .solvers import (
    average_rotations,
    camera_points,
    cauchy_weights,
    masked_median,
    orthogonal_iteration,
    ray_distance,
    similarity_fit,
)
from .trust import FrameEvidence, assess

logger = logging.getLogger(__name__)

GARBAGE_WEIGHT = 1e-3
SINGLE_THREAD_PIXELS = 1 << 22


@dataclass(frozen=True)
class AlignConfig:
    """Settings of the alignment.

    solver_pixels: pixels per frame used by the solve (a regular subgrid); full resolution only at the end.
    rounds: outer rounds of (fuse points, refit window similarities). pose_steps: orthogonal-iteration
    steps for the per-frame poses and focal. robust_width: Cauchy width in robust standard deviations.
    garbage_ratio, garbage_floor: a window whose relative misfit exceeds garbage_ratio x the median
    window's and garbage_floor is garbage. disparity_weight: weight of disparity depth against point-map
    depth in the final fusion. sky_tolerance: decode tolerance around the invalid value 1.05.
    min_frame_points: fewest valid solver pixels that pose a frame; frames with fewer are interpolated.
    """

    solver_pixels: int = 4096
    rounds: int = 3
    pose_steps: int = 12
    robust_width: float = 3.0
    garbage_ratio: float = 4.0
    garbage_floor: float = 0.05
    disparity_weight: float = 1.0
    sky_tolerance: float = 0.1
    min_frame_points: int = 12

    def __post_init__(self) -> None:
        limits = {
            "solver_pixels": (64, 1 << 22),
            "rounds": (1, 100),
            "pose_steps": (1, 1000),
            "robust_width": (0.5, 100.0),
            "garbage_ratio": (1.0, 1000.0),
            "garbage_floor": (0.0, 10.0),
            "disparity_weight": (0.0, 100.0),
            "sky_tolerance": (0.0, 0.5),
            "min_frame_points": (3, 1 << 20),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"AlignConfig.{name} = {value} is out of range; allowed [{low}, {high}].")


def _validate(predictions: list[WindowPrediction], color: np.ndarray) -> tuple[np.ndarray, int, list[str]]:
    """Frame indices [N, L], the clip length, and warnings about non-finite values; Geo4DError when unusable."""
    if not predictions:
        raise Geo4DError("No window predictions to align. Run the network on at least one window first.")
    shape = tuple(predictions[0].point_confidence.shape)
    device = predictions[0].point_map.device
    warnings = []
    for index, prediction in enumerate(predictions):
        if tuple(prediction.point_confidence.shape) != shape:
            raise Geo4DError(
                f"Window {index} has maps of shape {tuple(prediction.point_confidence.shape)} but window 0 has {shape}; "
                "all windows must have the same length and resolution. Predict all windows with one setting."
            )
        if prediction.point_map.device != device:
            raise Geo4DError(
                f"Window {index} is on {prediction.point_map.device}, window 0 on {device}. Move them to one device."
            )
        maps = (
            prediction.point_map,
            prediction.point_confidence,
            prediction.disparity,
            prediction.ray_direction,
            prediction.ray_moment,
        )
        bad = sum(int((~torch.isfinite(m)).sum()) for m in maps if not torch.isfinite(m.sum()))
        if bad:
            warnings.append(
                f"Window {index} holds {bad} NaN or infinite values; those pixels were treated as invalid."
            )
    frames = np.stack([p.frames.cpu().numpy() for p in predictions]).astype(np.int64)
    if frames.min() < 0:
        raise Geo4DError("Window frame indices must be >= 0.")
    num_frames = int(frames.max()) + 1
    uncovered = np.setdiff1d(np.arange(num_frames), frames)
    if len(uncovered):
        raise Geo4DError(
            f"Frames {uncovered[:5].tolist()} are seen by no window; the window plan does not cover the clip."
        )
    expected = (num_frames, shape[1], shape[2], 3)
    if tuple(color.shape) != expected:
        raise Geo4DError(
            f"The frame colours have shape {tuple(color.shape)}; expected {expected} (frames, H, W, RGB)."
        )
    for message in warnings:
        logger.warning(message)
    return frames, num_frames, warnings


def _fuse(
    values: torch.Tensor, weights: torch.Tensor, frames: torch.Tensor, num_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted per-frame mean of slot values [N, L, P, C] -> ([T, P, C], weight sums [T, P])."""
    index = frames.reshape(-1)
    total = torch.zeros(num_frames, *weights.shape[2:], dtype=weights.dtype, device=weights.device)
    total.index_add_(0, index, weights.reshape(-1, *weights.shape[2:]))
    summed = torch.zeros(num_frames, *values.shape[2:], dtype=values.dtype, device=values.device)
    summed.index_add_(0, index, (values * weights[..., None]).reshape(-1, *values.shape[2:]))
    return summed / total.clamp_min(1e-30)[..., None], total


def _apply(
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
    plain, _ = _fuse(world, grid.weights * window_weight[:, None, None], frames, num_frames)
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
    fused, total = _fuse(world, robust, frames, num_frames)
    return fused, total, robust


def _refine_windows(
    grid: SolverGrid, similarity, window_weight, slot_centres, num_frames: int, config: AlignConfig
):
    """Alternate robustly fused per-frame points and per-window Umeyama refits.

    slot_centres [N, L, 3]: the slots' camera centres in their windows' frames (for relative residuals).
    Returns the similarity, fused points [T, P, 3], fused weights [T, P], slot weights [N, L, P] and the
    windows' world points [N, L, P, 3].
    """
    count = grid.weights.shape[0]
    layout = slot_positions(grid.frames_t.cpu().numpy(), window_weight.cpu().numpy() > 0, num_frames)
    layout = (torch.from_numpy(layout[0]).to(grid.frames_t.device), layout[1])
    for _ in range(config.rounds):
        world = _apply(*similarity, grid.points)
        fused, fused_weight, robust = _robust_fuse(
            grid, world, window_weight, _apply(*similarity, slot_centres), layout, num_frames, config
        )
        fit_weight = (robust * (fused_weight[grid.frames_t] > 0)).reshape(count, -1)
        similarity = similarity_fit(
            grid.points.reshape(count, -1, 3), fused[grid.frames_t].reshape(count, -1, 3), fit_weight
        )
    world = _apply(*similarity, grid.points)
    fused, fused_weight, robust = _robust_fuse(
        grid, world, window_weight, _apply(*similarity, slot_centres), layout, num_frames, config
    )
    return similarity, fused, fused_weight, robust, world


def _frame_disagreement(world, fused, grid, slot_centre, window_weight, num_frames: int):
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


def _window_misfit(world, fused, frames, weights, size) -> torch.Tensor:
    """[N] median distance of each window's world points from the fused points, relative to scene size."""
    residual = (world - fused[frames]).norm(dim=-1).reshape(world.shape[0], -1)
    return masked_median(residual, (weights > 0).reshape(world.shape[0], -1)) / size


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


def _frame_poses(grid, fused, fused_weight, world_cams, focal, config, num_frames):
    """Per-frame camera-to-world rotation [T, 3, 3], centre [T, 3], the shared focal, which frames are posed,
    and (share [T] of each frame's fused weight that its camera fits within the robust width, median
    distance [T] of its fused points from their pixel rays relative to depth).

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
    return rotation, centre, focal, posed, (fit_share, residual)


def align_windows(
    predictions: list[WindowPrediction],
    color: np.ndarray,
    config: AlignConfig = AlignConfig(),
    fps: float = 24.0,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Reconstruction:
    """Fuse per-window predictions into one Reconstruction.

    predictions: windows of L frames at H x W (core.prediction), on one device (CPU or CUDA), float32.
    color: [T, H, W, 3] uint8 colours of the clip's frames, T = 1 + the largest frame index.
    Returns cameras in a world whose origin and axes are frame 0's camera, scaled to a median depth of 1;
    warnings name garbage windows, non-finite inputs and frames whose pose had to be interpolated.
    """
    with _cpu_threads(predictions):
        return _align(predictions, color, config, fps, Reporter(progress, cancel))


def _align(
    predictions: list[WindowPrediction],
    color: np.ndarray,
    config: AlignConfig,
    fps: float,
    reporter: Reporter,
) -> Reconstruction:
    started = time.perf_counter()
    reporter.report("align: set-up", 0, 1)
    frames, num_frames, warnings = _validate(predictions, color)
    grid = sample_windows(predictions, frames, config)
    window_weight = grid.window_weight
    for index in torch.nonzero(window_weight == 0).flatten().tolist():
        warnings.append(
            f"Window {index} (frames {frames[index, 0]}-{frames[index, -1]}) has no valid, confident pixel; it was ignored."
        )
    if not (window_weight > 0).any():
        raise Geo4DError(
            "Every window is empty (no valid pixel with positive confidence). Check the network's output."
        )

    reporter.report("align: window cameras", 0, 1)
    cams = window_cameras(grid, config)
    good = window_weight > 0.5
    focal_estimate = cams.shared_focal(good)
    focal = torch.tensor(focal_estimate.value, dtype=grid.points.dtype, device=grid.points.device)

    size = grid.scene_size()
    pairs = overlapping_pairs(frames)
    if pairs:
        *pair_similarity, pair_misfit, pair_support = fit_pairs(grid, pairs, config)
        garbage = _flag_garbage(
            pair_misfits(pair_misfit / size, pairs, len(predictions)), window_weight, config
        )
    else:
        garbage = torch.zeros_like(window_weight, dtype=torch.bool)
    window_weight = torch.where(garbage, torch.full_like(window_weight, GARBAGE_WEIGHT), window_weight)

    reporter.report("align: placing windows", 0, 1)
    trusted = [w for w in range(len(predictions)) if window_weight[w] > 0.5]
    averaged = None
    if pairs and len(trusted) > 1:
        finite = [m for m in range(len(pairs)) if torch.isfinite(pair_misfit[m])]
        usable_pairs = [pairs[m] for m in finite]
        usable_similarity = tuple(x[finite] for x in pair_similarity)
        averaged = average_pair_similarities(
            usable_pairs, usable_similarity, pair_support[finite], trusted, len(predictions)
        )
    initial = None if averaged is None else (averaged, trusted)
    similarity = chain_windows(grid, frames, window_weight, num_frames, config, initial)
    similarity, fused, fused_weight, robust, world = _refine_windows(
        grid, similarity, window_weight, cams.centre, num_frames, config
    )
    late = (
        _flag_garbage(_window_misfit(world, fused, grid.frames_t, grid.weights, size), window_weight, config)
        & ~garbage
    )
    if late.any():
        garbage = garbage | late
        window_weight = torch.where(garbage, torch.full_like(window_weight, GARBAGE_WEIGHT), window_weight)
        similarity, fused, fused_weight, robust, world = _refine_windows(
            grid, similarity, window_weight, cams.centre, num_frames, config
        )
    for index in torch.nonzero(garbage).flatten().tolist():
        warnings.append(
            f"Window {index} (frames {frames[index, 0]}-{frames[index, -1]}) disagrees with its neighbours and was "
            "down-weighted as unreliable."
        )

    reporter.report("align: cameras", 0, 1)
    scale, rotation_w, translation_w = similarity
    slot_rotation = rotation_w[:, None] @ cams.rotation
    slot_centre = _apply(scale, rotation_w, translation_w, cams.centre)
    slot_weight = (grid.weights.sum(-1) * window_weight[:, None]).reshape(-1)
    index = grid.frames_t.reshape(-1)
    init_rotation = average_rotations(slot_rotation.reshape(-1, 3, 3), slot_weight, index, num_frames)
    init_centre, _ = _fuse(
        slot_centre[:, :, None],
        slot_weight.reshape(grid.frames_t.shape)[..., None],
        grid.frames_t,
        num_frames,
    )
    rotation, centre, focal, posed, (fit_share, residual) = _frame_poses(
        grid, fused, fused_weight, (init_rotation, init_centre[:, 0]), focal, config, num_frames
    )
    if not posed.all():
        missing = np.nonzero(~posed)[0].tolist()
        warnings.append(
            f"Frames {missing[:10]} have too few valid pixels; their cameras were interpolated from neighbours."
        )
    if not torch.isfinite(focal) or focal <= 0:
        raise Geo4DError(
            "The focal length could not be estimated (degenerate predictions). Check the network's output."
        )

    disagreement, typical_misfit = _frame_disagreement(
        world, fused, grid, slot_centre, window_weight, num_frames
    )
    evidence = FrameEvidence(fit_share, residual, disagreement, typical_misfit, posed)
    frame_confidence, trust_warnings = assess(rotation.cpu().double().numpy(), evidence)
    focal_warnings = focal_estimate.warnings()
    warnings += focal_warnings + trust_warnings

    camera_z = camera_points(fused, rotation, centre)[..., 2]
    inverse_target = 1 / camera_z.clamp_min(1e-9)
    disparity_map = grid.fit_disparity(inverse_target, camera_z > 0, robust, window_weight)

    solved = torch.where((fused_weight > 0) & (camera_z > 0), camera_z, torch.nan).reshape(
        num_frames, *grid.shape
    )
    reference = solved[:, grid.nearest_rows][:, :, grid.nearest_cols].float()
    depth, confidence = dense_depth(
        predictions,
        frames,
        similarity,
        (rotation, centre),
        disparity_map,
        reference,
        window_weight,
        config,
        reporter,
    )
    camera_to_world = torch.eye(4, dtype=torch.float64).repeat(num_frames, 1, 1)
    camera_to_world[:, :3, :3] = rotation.cpu().double()
    camera_to_world[:, :3, 3] = centre.cpu().double()
    camera_to_world = torch.linalg.inv(camera_to_world[0]) @ camera_to_world
    valid_depth = depth[depth > 0]
    unit = float(valid_depth.median()) if valid_depth.numel() else 1.0
    camera_to_world[:, :3, 3] /= unit
    if not torch.isfinite(camera_to_world).all():
        raise Geo4DError("The alignment produced non-finite cameras; the predictions are degenerate.")
    _, height, width = predictions[0].point_confidence.shape
    elapsed = time.perf_counter() - started
    logger.info(
        "Aligned %d windows, %d frames in %.2f s; focal %.2f px.",
        len(predictions),
        num_frames,
        elapsed,
        float(focal),
    )
    return Reconstruction(
        camera_to_world=camera_to_world.numpy(),
        intrinsics=Intrinsics(float(focal), float(focal), width / 2, height / 2),
        depth=(depth / unit).cpu().numpy(),
        confidence=confidence.cpu().numpy(),
        color=color,
        fps=fps,
        settings={
            "align": asdict(config),
            "windows": len(predictions),
            "solver_grid": list(grid.shape),
            "focal_estimates": {
                name: {
                    "focal_px": round(median, 3),
                    "spread": round(spread, 5),
                    "difference": round(difference, 5),
                }
                for name, (median, spread, difference) in focal_estimate.families.items()
            },
        },
        timings={"align_s": elapsed},
        warnings=warnings,
        frame_confidence=frame_confidence,
    )


@contextmanager
def _cpu_threads(predictions: list[WindowPrediction]):
    """Run small CPU alignments on one thread: torch's intra-op threads cost more than they give on
    tensors this small, and on a busy machine their spinning can make a 0.2 s job take seconds."""
    small = sum(p.point_confidence.numel() for p in predictions) < SINGLE_THREAD_PIXELS
    if not predictions or predictions[0].point_map.device.type != "cpu" or not small:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _flag_garbage(misfit: torch.Tensor, window_weight: torch.Tensor, config: AlignConfig) -> torch.Tensor:
    """[N] bool: windows whose misfit is far above the typical window's (needs 3 or more usable windows)."""
    usable = (window_weight > 0) & torch.isfinite(misfit)
    if int(usable.sum()) < 3:
        return torch.zeros_like(usable)
    typical = misfit[usable].median()
    threshold = max(config.garbage_ratio * float(typical), config.garbage_floor)
    return usable & (misfit > threshold) & (not math.isnan(threshold))

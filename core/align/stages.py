"""Multi-modal alignment: per-window Geo4D predictions -> one camera path, one shared focal, per-frame depth.

align_windows runs these stages (all closed-form steps, batched over windows and frames; see
docs/alignment.md), each a function below passing a small frozen record to the next:
1. Decode every window on a subsampled pixel grid (core.modalities).
2. Per window and frame, in the window's own frame (core.align.cameras): a pinhole camera fitted to the
   point map alone, ray-moment centres mapped onto those cameras, rotation and focal from the point
   directions, the ray maps' focal. The shared focal weighs the three focal families' medians by how
   well each agrees with itself (a joint refit with the poses drifts along the focal/depth ambiguity,
   so it is not refitted).
3. Garbage windows: consecutive windows are Umeyama-fitted over their shared frames; a window that
   fits none of its neighbours is down-weighted and reported.
4. Windows are chained into one world (core.align.fusion) by weighted Umeyama fits against the points fused so far, then
   refined jointly: fuse per-frame world points (robust, confidence-weighted), refit every window's
   similarity to them, repeat.
5. Per-frame poses (core.align.poses): object-space orthogonal iterations against the fused points, each centre solved
   exactly for its rotation, robustly reweighted.
6. Per-window disparity affine maps by an L1 fit to the fused inverse depth; full-resolution depth fuses
   every window's point-map depth and disparity depth per frame, robustly.
7. Trust (core.align.trust): a confidence per frame and warnings about jumps, disagreeing windows,
   low-confidence frames and disagreeing focal estimates.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import Geo4DError
from ..prediction import WindowPrediction
from ..progress import CancelCheck, ProgressCallback, Reporter
from ..result import Intrinsics, Reconstruction
from .cameras import FocalEstimate, WindowCameras, window_cameras
from .config import GARBAGE_WEIGHT, AlignConfig
from .depth import dense_depth
from .fusion import (
    Fusion,
    apply_similarity,
    flag_garbage,
    frame_disagreement,
    fuse_frames,
    refine_windows,
    window_misfit,
)
from .initial import average_pair_similarities, chain_windows, fit_pairs, overlapping_pairs, pair_misfits
from .inputs import SampledWindows, sample_predictions
from .poses import FramePoses, frame_poses
from .solvers import average_rotations, camera_points
from .trust import FrameEvidence, assess

logger = logging.getLogger(__name__)

# Alignments with fewer predicted pixels than this run on one CPU thread.
SINGLE_THREAD_PIXELS = 1 << 22
DEFAULT_CONFIG = AlignConfig()


@dataclass(frozen=True)
class PlacedWindows:
    """The windows in one world (fusion), their weights [N] with garbage windows down-weighted, and which
    windows are garbage [N] bool."""

    fusion: Fusion
    window_weight: torch.Tensor
    garbage: torch.Tensor


def align_windows(
    predictions: list[WindowPrediction],
    color: np.ndarray,
    config: AlignConfig = DEFAULT_CONFIG,
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
    warnings: list[str] = []
    sampled = sample_predictions(predictions, color, config, warnings)
    grid = sampled.grid

    reporter.report("align: window cameras", 0, 1)
    cams = window_cameras(grid, config)
    focal_estimate = cams.shared_focal(grid.window_weight > 0.5)
    focal = torch.tensor(focal_estimate.value, dtype=grid.points.dtype, device=grid.points.device)

    reporter.report("align: placing windows", 0, 1)
    placed = _place_windows(sampled, cams, config, warnings)

    reporter.report("align: cameras", 0, 1)
    poses, slot_centre = _frame_cameras(sampled, cams, placed, focal, config, warnings)
    frame_confidence = _frame_trust(sampled, placed, poses, slot_centre, focal_estimate, warnings)

    depth, confidence = _dense_depth(predictions, sampled, placed, poses, config, reporter)
    camera_to_world, unit = _normalised_cameras(poses, depth)
    _, height, width = predictions[0].point_confidence.shape
    elapsed = time.perf_counter() - started
    logger.info(
        "Aligned %d windows, %d frames in %.2f s; focal %.2f px.",
        len(predictions),
        sampled.num_frames,
        elapsed,
        float(focal),
    )
    return Reconstruction(
        camera_to_world=camera_to_world,
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


def _place_windows(
    sampled: SampledWindows, cams: WindowCameras, config: AlignConfig, warnings: list[str]
) -> PlacedWindows:
    """Garbage windows flagged from their neighbours' fits, the rest chained into one world and refined;
    windows that misfit the refined world are flagged late and the refinement rerun without them."""
    grid, frames, num_frames = sampled.grid, sampled.frames, sampled.num_frames
    count = len(frames)
    window_weight = grid.window_weight
    size = grid.scene_size()
    pairs = overlapping_pairs(frames)
    if pairs:
        *pair_similarity, pair_misfit, pair_support = fit_pairs(grid, pairs, config)
        garbage = flag_garbage(pair_misfits(pair_misfit / size, pairs, count), window_weight, config)
    else:
        garbage = torch.zeros_like(window_weight, dtype=torch.bool)
    window_weight = torch.where(garbage, torch.full_like(window_weight, GARBAGE_WEIGHT), window_weight)

    trusted = [w for w in range(count) if window_weight[w] > 0.5]
    averaged = None
    if pairs and len(trusted) > 1:
        finite = [m for m in range(len(pairs)) if torch.isfinite(pair_misfit[m])]
        usable_pairs = [pairs[m] for m in finite]
        usable_similarity = tuple(x[finite] for x in pair_similarity)
        averaged = average_pair_similarities(
            usable_pairs, usable_similarity, pair_support[finite], trusted, count
        )
    initial = None if averaged is None else (averaged, trusted)
    similarity = chain_windows(grid, frames, window_weight, num_frames, config, initial)
    fusion = refine_windows(grid, similarity, window_weight, cams.centre, num_frames, config)
    late = (
        flag_garbage(
            window_misfit(fusion.world, fusion.fused, grid.frames_t, grid.weights, size),
            window_weight,
            config,
        )
        & ~garbage
    )
    if late.any():
        garbage = garbage | late
        window_weight = torch.where(garbage, torch.full_like(window_weight, GARBAGE_WEIGHT), window_weight)
        fusion = refine_windows(grid, fusion.similarity, window_weight, cams.centre, num_frames, config)
    for index in torch.nonzero(garbage).flatten().tolist():
        warnings.append(
            f"Window {index} (frames {frames[index, 0]}-{frames[index, -1]}) disagrees with its neighbours and was "
            "down-weighted as unreliable."
        )
    return PlacedWindows(fusion, window_weight, garbage)


def _frame_cameras(
    sampled: SampledWindows,
    cams: WindowCameras,
    placed: PlacedWindows,
    focal: torch.Tensor,
    config: AlignConfig,
    warnings: list[str],
) -> tuple[FramePoses, torch.Tensor]:
    """Per-frame cameras started from the weighted average of the placed window cameras, and the slots'
    camera centres in the world [N, L, 3]."""
    grid, num_frames, fusion = sampled.grid, sampled.num_frames, placed.fusion
    scale, rotation_w, translation_w = fusion.similarity
    slot_rotation = rotation_w[:, None] @ cams.rotation
    slot_centre = apply_similarity(scale, rotation_w, translation_w, cams.centre)
    slot_weight = (grid.weights.sum(-1) * placed.window_weight[:, None]).reshape(-1)
    index = grid.frames_t.reshape(-1)
    init_rotation = average_rotations(slot_rotation.reshape(-1, 3, 3), slot_weight, index, num_frames)
    init_centre, _ = fuse_frames(
        slot_centre[:, :, None],
        slot_weight.reshape(grid.frames_t.shape)[..., None],
        grid.frames_t,
        num_frames,
    )
    poses = frame_poses(
        grid, fusion.fused, fusion.fused_weight, (init_rotation, init_centre[:, 0]), focal, config, num_frames
    )
    if not poses.posed.all():
        missing = np.nonzero(~poses.posed)[0].tolist()
        warnings.append(
            f"Frames {missing[:10]} have too few valid pixels; their cameras were interpolated from neighbours."
        )
    if not torch.isfinite(focal) or focal <= 0:
        raise Geo4DError(
            "The focal length could not be estimated (degenerate predictions). Check the network's output."
        )
    return poses, slot_centre


def _frame_trust(
    sampled: SampledWindows,
    placed: PlacedWindows,
    poses: FramePoses,
    slot_centre: torch.Tensor,
    focal_estimate: FocalEstimate,
    warnings: list[str],
) -> np.ndarray:
    """Per-frame confidence [T] (core.align.trust); adds the focal and trust warnings."""
    fusion = placed.fusion
    disagreement, typical_misfit = frame_disagreement(
        fusion.world, fusion.fused, sampled.grid, slot_centre, placed.window_weight, sampled.num_frames
    )
    evidence = FrameEvidence(poses.fit_share, poses.residual, disagreement, typical_misfit, poses.posed)
    frame_confidence, trust_warnings = assess(poses.rotation.cpu().double().numpy(), evidence)
    warnings += focal_estimate.warnings() + trust_warnings
    return frame_confidence


def _dense_depth(
    predictions: list[WindowPrediction],
    sampled: SampledWindows,
    placed: PlacedWindows,
    poses: FramePoses,
    config: AlignConfig,
    reporter: Reporter,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-resolution depth and confidence [T, H, W]: per-window disparity maps fitted to the solve's
    inverse depth, then every window's depths fused per frame (core.align.depth)."""
    grid, fusion = sampled.grid, placed.fusion
    camera_z = camera_points(fusion.fused, poses.rotation, poses.centre)[..., 2]
    inverse_target = 1 / camera_z.clamp_min(1e-9)
    disparity_map = grid.fit_disparity(inverse_target, camera_z > 0, fusion.robust, placed.window_weight)

    solved = torch.where((fusion.fused_weight > 0) & (camera_z > 0), camera_z, torch.nan).reshape(
        sampled.num_frames, *grid.shape
    )
    reference = solved[:, grid.nearest_rows][:, :, grid.nearest_cols].float()
    return dense_depth(
        predictions,
        sampled.frames,
        fusion.similarity,
        (poses.rotation, poses.centre),
        disparity_map,
        reference,
        placed.window_weight,
        config,
        reporter,
    )


def _normalised_cameras(poses: FramePoses, depth: torch.Tensor) -> tuple[np.ndarray, float]:
    """Camera-to-world [T, 4, 4] float64 in frame 0's camera frame, scaled by 1 / unit, and unit: the
    median valid depth (1 without any), which the caller divides the depth by."""
    num_frames = poses.rotation.shape[0]
    camera_to_world = torch.eye(4, dtype=torch.float64).repeat(num_frames, 1, 1)
    camera_to_world[:, :3, :3] = poses.rotation.cpu().double()
    camera_to_world[:, :3, 3] = poses.centre.cpu().double()
    camera_to_world = torch.linalg.inv(camera_to_world[0]) @ camera_to_world
    valid_depth = depth[depth > 0]
    unit = float(valid_depth.median()) if valid_depth.numel() else 1.0
    camera_to_world[:, :3, 3] /= unit
    if not torch.isfinite(camera_to_world).all():
        raise Geo4DError("The alignment produced non-finite cameras; the predictions are degenerate.")
    return camera_to_world.numpy(), unit


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

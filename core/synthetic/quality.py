"""A reconstruction of a synthetic clip against its exact ground truth: the truth at the result's own pixels,
and the quality figures of the issue (depth AbsRel / delta, focal error, ATE as a fraction of the path, RPE)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import Geo4DError
from ..evaluation.metrics import camera_metrics, depth_metrics
from ..result import Intrinsics, Reconstruction
from .render import SceneConfig, render_scene

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityFigures:
    """abs_rel, delta_1_25: depth after a per-sequence scale and shift; focal_error: |f / f_true - 1|;
    ate_fraction: ATE / true path length (after Sim(3) alignment); rpe_rotation_deg; constant_abs_rel: the
    AbsRel of a constant depth (the baseline a useful depth must beat); path_length in true units."""

    abs_rel: float
    delta_1_25: float
    focal_error: float
    focal: float
    true_focal: float
    ate: float
    ate_fraction: float
    rpe_rotation_deg: float
    path_length: float
    constant_abs_rel: float


def truth_at_result(config: SceneConfig, result: Reconstruction) -> Reconstruction:
    """The ground truth of the clip `config` renders, at the result's pixels and source frames.

    The pipeline scales the video to cover the network size and crops the centre (settings
    "frame_mapping"); rendering the scene at the scaled size and cropping alike gives exact depth and
    intrinsics for every result pixel (the synthetic field of view spans the longer side at any size).
    """
    mapping = result.settings.get("frame_mapping")
    if mapping is None:
        raise Geo4DError("The result records no frame mapping; reconstruct it again with this version.")
    scaled = SceneConfig(
        frames=config.frames,
        width=round(mapping["scale_x"] * mapping["source_width"]),
        height=round(mapping["scale_y"] * mapping["source_height"]),
        seed=config.seed,
        fps=config.fps,
        movers=config.movers,
    )
    truth = render_scene(scaled)
    top, left = mapping["crop_top"], mapping["crop_left"]
    rows, cols = slice(top, top + result.height), slice(left, left + result.width)
    frames = result.source_frames
    k = truth.intrinsics
    return Reconstruction(
        camera_to_world=truth.camera_to_world[frames],
        intrinsics=Intrinsics(k.fx, k.fy, k.cx - left, k.cy - top),
        depth=truth.depth[frames, rows, cols],
        confidence=truth.confidence[frames, rows, cols],
        color=truth.color[frames, rows, cols],
        fps=truth.fps,
        source_frames=frames,
    )


def quality_figures(result: Reconstruction, truth: Reconstruction) -> QualityFigures:
    """The figures of `result` against `truth` (same frames and pixels, see truth_at_result)."""
    depth = depth_metrics(result.depth, truth.depth)
    constant = depth_metrics(np.ones_like(truth.depth), truth.depth)
    cameras = camera_metrics(result.camera_to_world, truth.camera_to_world)
    focal, true_focal = result.intrinsics.fx, truth.intrinsics.fx
    return QualityFigures(
        abs_rel=depth.abs_rel,
        delta_1_25=depth.delta_1_25,
        focal_error=abs(focal / true_focal - 1.0),
        focal=focal,
        true_focal=true_focal,
        ate=cameras.ate,
        ate_fraction=cameras.ate / cameras.path_length if cameras.path_length > 0 else float("inf"),
        rpe_rotation_deg=cameras.rpe_rotation_deg,
        path_length=cameras.path_length,
        constant_abs_rel=constant.abs_rel,
    )

"""The aligner's input: window predictions checked for shape, coverage and finite values, sampled on the solver grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import Geo4DError
from ..prediction import WindowPrediction
from .config import AlignConfig
from .initial import SolverGrid, sample_windows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampledWindows:
    """The windows on the solver's pixel grid: their frame indices [N, L] into a clip of num_frames."""

    frames: np.ndarray
    num_frames: int
    grid: SolverGrid


def sample_predictions(
    predictions: list[WindowPrediction], color: np.ndarray, config: AlignConfig, warnings: list[str]
) -> SampledWindows:
    """Checked predictions on the solver grid; warns about (and ignores) windows without a usable pixel."""
    frames, num_frames, input_warnings = _validate(predictions, color)
    warnings += input_warnings
    grid = sample_windows(predictions, frames, config)
    for index in torch.nonzero(grid.window_weight == 0).flatten().tolist():
        warnings.append(
            f"Window {index} (frames {frames[index, 0]}-{frames[index, -1]}) has no valid, confident pixel; it was ignored."
        )
    if not (grid.window_weight > 0).any():
        raise Geo4DError(
            "Every window is empty (no valid pixel with positive confidence). Check the network's output."
        )
    return SampledWindows(frames, num_frames, grid)


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

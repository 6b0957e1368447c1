"""Video depth and camera metrics of the Geo4D benchmarks: AbsRel, delta<1.25, ATE, RPE (numpy).

Depth (per sequence): the prediction is mapped to the ground truth by one scale and shift (or scale only)
fitted with an L1 loss in depth space over all valid pixels of the sequence, optionally capped at a
maximum depth. Cameras: predicted centres are Sim(3)-aligned to the truth by Umeyama's method; ATE is the
RMSE of centre errors, RPE the RMSE of relative-motion errors between consecutive frames (translation in
ground-truth units, rotation in degrees), both after that alignment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import Geo4DError

logger = logging.getLogger(__name__)

L1_FIT_STEPS = 30
DEPTH_ALIGNMENTS = ("scale_shift", "scale", "none")


@dataclass(frozen=True)
class DepthMetrics:
    """abs_rel: mean |p - g| / g; delta_1_25: fraction with max(p/g, g/p) < 1.25; scale, shift: the fit;
    pixels: how many ground-truth pixels were evaluated; coverage: fraction of them the prediction covers."""

    abs_rel: float
    delta_1_25: float
    scale: float
    shift: float
    pixels: int
    coverage: float


@dataclass(frozen=True)
class CameraMetrics:
    """ate: RMSE of camera-centre errors; rpe_translation, rpe_rotation_deg: RMSE of consecutive relative-pose
    errors; scale: the Sim(3) scale applied to the prediction; path_length: length of the true path."""

    ate: float
    rpe_translation: float
    rpe_rotation_deg: float
    scale: float
    path_length: float


def fit_scale_shift_l1(
    prediction: np.ndarray, truth: np.ndarray, scale_only: bool = False
) -> tuple[float, float]:
    """(scale, shift) minimising sum |scale * prediction + shift - truth| over 1-D arrays (IRLS)."""
    p = prediction.astype(np.float64)
    g = truth.astype(np.float64)
    weights = np.ones_like(p)
    scale, shift = 1.0, 0.0
    floor = 1e-9 * max(float(np.abs(g).mean()), 1e-12)
    for _ in range(L1_FIT_STEPS):
        if scale_only:
            scale = float((weights * p * g).sum() / max((weights * p * p).sum(), 1e-300))
        else:
            design = np.stack([p, np.ones_like(p)], axis=1) * np.sqrt(weights)[:, None]
            scale, shift = np.linalg.lstsq(design, g * np.sqrt(weights), rcond=None)[0]
        weights = 1.0 / np.maximum(np.abs(scale * p + shift - g), floor)
    return float(scale), float(shift)


def depth_metrics(
    prediction: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray | None = None,
    alignment: str = "scale_shift",
    max_depth: float | None = None,
) -> DepthMetrics:
    """Per-sequence video depth metrics of prediction vs truth, both [T, H, W] camera z (0 = no depth).

    mask [T, H, W] bool restricts the evaluated pixels further; alignment is "scale_shift", "scale" or
    "none"; max_depth caps the truth (pixels beyond are skipped) and clips the aligned prediction.
    Pixels where the prediction has no depth stay in the evaluation and count as depth 0 after alignment.
    """
    if alignment not in DEPTH_ALIGNMENTS:
        raise ValueError(f"alignment = {alignment!r}; allowed: {', '.join(DEPTH_ALIGNMENTS)}.")
    if prediction.shape != truth.shape:
        raise Geo4DError(f"Predicted depth has shape {prediction.shape} but the ground truth {truth.shape}.")
    truth = np.asarray(truth, dtype=np.float64)
    prediction = np.nan_to_num(np.asarray(prediction, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    valid = np.isfinite(truth) & (truth > 0)
    if max_depth is not None:
        valid &= truth <= max_depth
    if mask is not None:
        valid &= mask
    if not valid.any():
        raise Geo4DError(
            "No valid ground-truth depth to evaluate (all masked, zero or beyond the depth cap)."
        )
    p, g = prediction[valid], truth[valid]
    covered = p > 0
    if alignment == "none" or not covered.any():
        scale, shift = 1.0, 0.0
    else:
        scale, shift = fit_scale_shift_l1(p[covered], g[covered], scale_only=alignment == "scale")
    aligned = np.where(covered, scale * p + shift, 0.0)
    aligned = np.clip(aligned, 1e-6, max_depth if max_depth is not None else np.inf)
    ratio = np.maximum(aligned / g, g / aligned)
    return DepthMetrics(
        abs_rel=float(np.mean(np.abs(aligned - g) / g)),
        delta_1_25=float(np.mean(ratio < 1.25)),
        scale=scale,
        shift=shift,
        pixels=int(valid.sum()),
        coverage=float(covered.mean()),
    )


def umeyama(
    source: np.ndarray, target: np.ndarray, with_scale: bool = True
) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation [3, 3], translation [3]) minimising sum |target - (s R source + t)|^2 over [N, 3] points."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_c, target_c = source - source_mean, target - target_mean
    covariance = target_c.T @ source_c / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ flip @ vt
    variance = (source_c**2).sum() / len(source)
    scale = float(np.trace(np.diag(singular) @ flip) / variance) if with_scale and variance > 0 else 1.0
    return scale, rotation, target_mean - scale * rotation @ source_mean


def rotation_angle_deg(rotation: np.ndarray) -> np.ndarray:
    """Angles in degrees of rotations [..., 3, 3]."""
    cosine = (np.trace(rotation, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def path_length(camera_to_world: np.ndarray) -> float:
    """Summed distance between consecutive camera centres of [T, 4, 4] poses."""
    return float(np.linalg.norm(np.diff(camera_to_world[:, :3, 3], axis=0), axis=-1).sum())


def camera_metrics(
    prediction: np.ndarray, truth: np.ndarray, frames: np.ndarray | None = None
) -> CameraMetrics:
    """ATE and RPE of predicted camera-to-world poses [T, 4, 4] against the truth, after Sim(3) alignment.

    frames: optional [T] bool or index array choosing which frames count (RPE uses consecutive chosen ones).
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if prediction.shape != truth.shape or prediction.shape[-2:] != (4, 4):
        raise Geo4DError(
            f"Camera arrays have shapes {prediction.shape} and {truth.shape}; expected two [T, 4, 4]."
        )
    if frames is not None:
        prediction, truth = prediction[frames], truth[frames]
    if len(truth) < 2:
        raise Geo4DError("Camera metrics need at least two frames.")
    scale, rotation, translation = umeyama(prediction[:, :3, 3], truth[:, :3, 3])
    aligned = prediction.copy()
    aligned[:, :3, :3] = rotation @ prediction[:, :3, :3]
    aligned[:, :3, 3] = scale * prediction[:, :3, 3] @ rotation.T + translation
    ate = float(np.sqrt(np.mean(np.sum((aligned[:, :3, 3] - truth[:, :3, 3]) ** 2, axis=-1))))
    relative_true = np.linalg.inv(truth[:-1]) @ truth[1:]
    relative_pred = np.linalg.inv(aligned[:-1]) @ aligned[1:]
    error = np.linalg.inv(relative_true) @ relative_pred
    rpe_t = float(np.sqrt(np.mean(np.sum(error[:, :3, 3] ** 2, axis=-1))))
    rpe_r = float(np.sqrt(np.mean(rotation_angle_deg(error[:, :3, :3]) ** 2)))
    return CameraMetrics(ate, rpe_t, rpe_r, scale, path_length(truth))

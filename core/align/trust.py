"""How far the aligner trusts its own result: a confidence per frame and warnings a user can act on.

A frame's confidence (0..1) is the share of its fused points that its camera fits (robust weight over
weight), lowered when even those points miss their pixel rays by a sizeable fraction of their depth
and when the windows that see the frame disagree, halved at a jump in the path, and 0 where its camera
had to be interpolated. Warnings name jumps in the path (a frame-to-frame rotation far beyond
its neighbours'), frames where windows disagree, and frames of low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..evaluation.metrics import rotation_angle_deg

# A step is a jump when it turns more than JUMP_RATIO x its neighbours' median step plus JUMP_MARGIN_DEG.
JUMP_RATIO = 3.0
JUMP_MARGIN_DEG = 5.0
JUMP_NEIGHBOURS = 4
# Windows disagree on a frame when one's points there stray (median, relative to depth) by more than
# DISAGREEMENT_RATIO x the typical window's and by more than DISAGREEMENT_FLOOR.
DISAGREEMENT_RATIO = 4.0
DISAGREEMENT_FLOOR = 0.05
# Points missing their rays by this fraction of their depth (median) halve a frame's confidence.
RESIDUAL_SCALE = 0.1
LOW_CONFIDENCE = 0.5
FRAMES_SHOWN = 6


@dataclass
class FrameEvidence:
    """What the solve knows per frame (T frames): fit_share [T] robust over total pose weight; residual
    [T] median distance of its points from their pixel rays relative to depth; disagreement [T] the largest relative misfit of a trusted window's points on that frame (NaN where
    none), typical_misfit the median slot misfit; posed [T] bool: the frame's camera was solved."""

    fit_share: np.ndarray
    residual: np.ndarray
    disagreement: np.ndarray
    typical_misfit: float
    posed: np.ndarray


def frame_list(frames: np.ndarray) -> str:
    """'3-7, 12, 20-21' for sorted frame indices, the first FRAMES_SHOWN runs, then '...'."""
    runs: list[list[int]] = []
    for frame in frames.tolist():
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    shown = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:FRAMES_SHOWN]]
    return ", ".join(shown) + (", ..." if len(runs) > FRAMES_SHOWN else "")


def path_jumps(rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps t (frame t to t+1) that turn far more than their neighbours: (steps, angles, neighbours'
    median angles), from camera-to-world rotations [T, 3, 3]."""
    steps = rotation_angle_deg(np.swapaxes(rotations[:-1], -1, -2) @ rotations[1:])
    if len(steps) < 3:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    padded = np.pad(steps, JUMP_NEIGHBOURS, constant_values=np.nan)
    offsets = [k for k in range(-JUMP_NEIGHBOURS, JUMP_NEIGHBOURS + 1) if k]
    around = np.stack([padded[JUMP_NEIGHBOURS + k : JUMP_NEIGHBOURS + k + len(steps)] for k in offsets])
    typical = np.nanmedian(around, axis=0)
    jumps = np.flatnonzero(steps > JUMP_RATIO * typical + JUMP_MARGIN_DEG)
    return jumps, steps[jumps], typical[jumps]


def assess(rotations: np.ndarray, evidence: FrameEvidence) -> tuple[np.ndarray, list[str]]:
    """Per-frame confidence [T] float32 in [0, 1] and the warnings, from the final camera-to-world
    rotations [T, 3, 3] and the solve's evidence."""
    warnings = []
    scale = max(DISAGREEMENT_RATIO * evidence.typical_misfit, DISAGREEMENT_FLOOR)
    disagreement = np.nan_to_num(evidence.disagreement, nan=0.0)
    residual = np.nan_to_num(evidence.residual, nan=np.inf) / RESIDUAL_SCALE
    confidence = np.clip(evidence.fit_share, 0.0, 1.0) / (1 + residual**2) / (1 + (disagreement / scale) ** 2)
    jumps, angles, typical = path_jumps(rotations)
    for step, angle, around in zip(jumps[:FRAMES_SHOWN], angles, typical, strict=False):
        warnings.append(
            f"The camera turns {angle:.1f} deg between frames {step} and {step + 1}, far more than around "
            f"them ({around:.1f} deg per frame): that step is probably wrong."
        )
    if len(jumps) > FRAMES_SHOWN:
        warnings.append(f"... and {len(jumps) - FRAMES_SHOWN} more jumps in the camera path.")
    confidence[jumps] *= 0.5
    confidence[jumps + 1] *= 0.5
    disagreeing = np.flatnonzero(disagreement > scale)
    if len(disagreeing):
        warnings.append(
            f"Windows disagree about frames {frame_list(disagreeing)} (their points differ by up to "
            f"{100 * disagreement[disagreeing].max():.0f} % of the depth); cameras and depth there are "
            "less certain."
        )
    confidence = np.where(evidence.posed, confidence, 0.0).astype(np.float32)
    low = np.flatnonzero(confidence < LOW_CONFIDENCE)
    if len(low):
        warnings.append(
            f"{len(low)} of {len(confidence)} frames have a camera confidence under {LOW_CONFIDENCE} "
            f"(frames {frame_list(low)}); the result's frame_confidence lists every frame's."
        )
    return confidence, warnings

"""Small synthetic results with exact ground truth for the Blender tests, optionally off-centre."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.core.synthetic.render import SceneConfig, write_synthetic


def write_result(
    folder: Path, width: int, height: int, frames: int = 4, seed: int = 0, crop: tuple[int, int] = (0, 0)
) -> Reconstruction:
    """write_synthetic into `folder` (result + video.mp4), and return the stored ground truth.

    crop (top, left): drop that many rows and columns of every map, which moves the principal point off
    the image centre exactly (cx - left, cy - top); the result is then `crop` pixels smaller.
    """
    write_synthetic(folder, SceneConfig(frames=frames, width=width, height=height, seed=seed))
    truth = Reconstruction.load(folder)
    top, left = crop
    if top or left:
        k = truth.intrinsics
        truth = dataclasses.replace(
            truth,
            intrinsics=Intrinsics(k.fx, k.fy, k.cx - left, k.cy - top),
            depth=truth.depth[:, top:, left:],
            confidence=truth.confidence[:, top:, left:],
            color=truth.color[:, top:, left:],
            motion=dataclasses.replace(truth.motion, score=truth.motion.score[:, top:, left:]),
        )
        truth.save(folder)
    return truth

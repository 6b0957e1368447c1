"""The fused static cloud: the static points of every frame merged into one cloud on a depth-following grid.

First each static pixel's depth becomes the mean of its own and what nearby frames (t +- 1, 2, 4, 8) see of
the same surface there (where they agree within the result's measured tolerance, on smooth surfaces), which
averages the network's depth noise away before the points are merged.

Each static pixel's world point falls into a cube whose side is `cell_pixels` pixel footprints at its
distance from its camera (distance / focal), rounded to a power of two so that cubes of one size tile
space: near surfaces keep fine detail, far ones are not split into single-pixel specks. Points of one
cube are merged, weighted by confidence (position, colour and confidence); a cube seen by fewer than
`min_frames` frames is an outlier (a depth spike, a moving thing missed by the masks) and dropped.
Frames are merged in chunks and the chunks' sums merged again, so memory follows the chunk, not the clip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .camera import invert_rigid
from .limits import check_integer, check_number
from .motion_masks import agreement_tolerance, frame_world_points, surrounding_depths
from .ply import write_points

logger = logging.getLogger(__name__)

# Frames whose points are merged at once before the chunks' cells are merged with each other.
CHUNK_FRAMES = 16
# Frame distances of the neighbours whose view of a static surface is averaged into its depth.
AVERAGING_OFFSETS = (1, 2, 4, 8)


@dataclass(frozen=True)
class FusionConfig:
    """cell_pixels: cube side in pixel footprints at the point's distance (> 0). min_frames: frames that must
    see a cube for it to stay (clips shorter than this keep cubes seen by every frame)."""

    cell_pixels: float = 1.0
    min_frames: int = 4

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_number(owner, "cell_pixels", self.cell_pixels, 0.0, 64.0, "a number in (0, 64]", False)
        check_integer(owner, "min_frames", self.min_frames, 1, 1000)


@dataclass
class StaticCloud:
    """xyz [N, 3] float32 world points, rgb [N, 3] uint8, confidence [N] float32 (the confidence-weighted mean
    of the merged points), frames [N] int32 (how many frames saw each point)."""

    xyz: np.ndarray
    rgb: np.ndarray
    confidence: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)


@dataclass
class _Cells:
    """Sums per grid cell: keys [M, 4] int64 (level, ix, iy, iz), weight [M], weighted xyz [M, 3] and rgb
    [M, 3], weighted confidence [M], frames [M]."""

    keys: np.ndarray
    weight: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    confidence: np.ndarray
    frames: np.ndarray


def fuse_static_points(result, static: np.ndarray, config: FusionConfig | None = None) -> StaticCloud:
    """The fused cloud of the pixels `static` [T, H, W] bool of a core.result.Reconstruction (those that carry
    a point; confidence-weighted, confidence 0 counts as a tiny weight)."""
    config = config or FusionConfig()
    result = replace(result, depth=averaged_static_depth(result, static), motion=None)
    chunks = []
    for first in range(0, result.num_frames, CHUNK_FRAMES):
        parts = [
            _frame_samples(result, index, static[index], config.cell_pixels)
            for index in range(first, min(first + CHUNK_FRAMES, result.num_frames))
        ]
        chunks.append(_merge(parts))
    cells = _merge(chunks)
    if cells is None:
        return StaticCloud(
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.uint8),
            np.zeros(0, np.float32),
            np.zeros(0, np.int32),
        )
    keep = cells.frames >= min(config.min_frames, result.num_frames)
    weight = cells.weight[keep][:, None]
    logger.info(
        "Fused %d static cells; %d seen by too few frames dropped.", len(keep), np.count_nonzero(~keep)
    )
    return StaticCloud(
        xyz=(cells.xyz[keep] / weight).astype(np.float32),
        rgb=np.clip(np.round(cells.rgb[keep] / weight), 0, 255).astype(np.uint8),
        confidence=(cells.confidence[keep] / weight[:, 0]).astype(np.float32),
        frames=cells.frames[keep].astype(np.int32),
    )


def averaged_static_depth(result, static: np.ndarray) -> np.ndarray:
    """[T, H, W] depth where each `static` pixel's depth is averaged with the depth, in its own camera, of the
    surface that frames t +- AVERAGING_OFFSETS see at its projection, where they agree within the result's
    tolerance and the surface there is smooth; other pixels keep their depth."""
    valid = result.valid_mask()
    depth = np.where(valid, result.depth, 0.0)
    seen = np.where(valid, result.depth, np.inf)
    tolerance = agreement_tolerance(result.camera_to_world, result.intrinsics, depth)
    world_to_camera = invert_rigid(result.camera_to_world)
    averaged = depth.astype(np.float32)
    for frame in range(result.num_frames):
        rows, cols, world = frame_world_points(
            result.camera_to_world[frame], result.intrinsics, np.where(static[frame], depth[frame], 0.0)
        )
        total, count = depth[frame, rows, cols].astype(np.float64), np.ones(len(rows))
        for offset in AVERAGING_OFFSETS:
            for other in (frame - offset, frame + offset):
                if not 0 <= other < result.num_frames:
                    continue
                z, corners, weights, inside = surrounding_depths(
                    world, world_to_camera[other], seen[other], result.intrinsics
                )
                nearest, farthest = corners.min(axis=0), corners.max(axis=0)
                smooth = inside & np.isfinite(farthest) & (farthest <= (1 + tolerance) * nearest)
                with np.errstate(invalid="ignore"):
                    gap = (weights * corners).sum(axis=0) / z - 1
                agree = smooth & (np.abs(gap) <= tolerance)
                # The neighbour's surface point lies on its ray through the point, at its observed depth.
                centre = result.camera_to_world[other, :3, 3]
                surface = centre + (world[agree] - centre) * (1 + gap[agree, None])
                total[agree] += surface @ world_to_camera[frame, 2, :3] + world_to_camera[frame, 2, 3]
                count[agree] += 1
        averaged[frame, rows, cols] = total / count
    return np.where(valid, averaged, result.depth)


def _frame_samples(result, index: int, static: np.ndarray, cell_pixels: float) -> _Cells:
    """One frame's static points summed per cell of the depth-following grid (each cell: frames = 1)."""
    xyz, rgb, confidence = result.frame_points(index, pixels=static)
    xyz = xyz.astype(np.float64)
    distance = np.linalg.norm(xyz - result.camera_to_world[index, :3, 3], axis=1)
    size = np.maximum(cell_pixels * distance / result.intrinsics.fx, 1e-9)
    level = np.ceil(np.log2(size))
    cell = np.exp2(level)[:, None]
    keys = np.concatenate([level[:, None], np.floor(xyz / cell)], axis=1).astype(np.int64)
    weight = np.maximum(confidence.astype(np.float64), 1e-6)
    points = _Cells(
        keys=keys,
        weight=weight,
        xyz=xyz * weight[:, None],
        rgb=rgb.astype(np.float64) * weight[:, None],
        confidence=confidence * weight,
        frames=np.ones(len(keys), dtype=np.int64),
    )
    return _sum_by_key(points, count_frames_once=True) if len(keys) else points


def _merge(parts: list[_Cells]) -> _Cells | None:
    """Cells of disjoint sets of frames summed per key, so that their frame counts add up; None for none."""
    parts = [part for part in parts if part is not None and len(part.keys)]
    if not parts:
        return None
    names = _Cells.__dataclass_fields__
    joined = _Cells(*(np.concatenate([getattr(part, name) for part in parts]) for name in names))
    return _sum_by_key(joined, count_frames_once=False)


def _sum_by_key(cells: _Cells, count_frames_once: bool) -> _Cells:
    """Rows with equal keys summed (lexsort, then bincount); frames taken as 1 per key if count_frames_once."""
    order = np.lexsort(cells.keys.T[::-1])
    keys = cells.keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = (keys[1:] != keys[:-1]).any(axis=1)
    cell = np.cumsum(starts) - 1
    count = int(cell[-1]) + 1

    def total(values: np.ndarray) -> np.ndarray:
        values = values[order]
        if values.ndim == 1:
            return np.bincount(cell, weights=values, minlength=count)
        return np.stack([np.bincount(cell, weights=column, minlength=count) for column in values.T], axis=1)

    frames = (
        np.ones(count, dtype=np.int64) if count_frames_once else total(cells.frames).round().astype(np.int64)
    )
    return _Cells(
        keys[starts], total(cells.weight), total(cells.xyz), total(cells.rgb), total(cells.confidence), frames
    )


def write_static_cloud(path: Path, cloud: StaticCloud) -> None:
    """static.ply: the cloud's points in the result's point-file format (core.ply)."""
    write_points(path, cloud.xyz, cloud.rgb, cloud.confidence)

"""The TUM RGB-D folder format shared by TUM and Bonn: timestamped file lists, association, quaternion poses.

A sequence folder holds rgb.txt and depth.txt ("timestamp path" per line), groundtruth.txt
("timestamp tx ty tz qx qy qz qw" per line: the colour camera's optical centre and orientation in the
world, i.e. camera-to-world with OpenCV camera axes), rgb/ and depth/ PNGs (depth in 1/5000 m).
Lines starting with '#' are comments. Streams are paired by nearest timestamps as TUM's associate.py does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import Geo4DError
from .image_files import read_depth_png
from .sequence import BenchmarkSequence, DatasetSpec, intrinsics_from_matrix, require_file, require_matching

logger = logging.getLogger(__name__)

DEPTH_UNITS_PER_METRE = 5000.0
MAX_TIME_DIFFERENCE = 0.02  # seconds, the association radius of the TUM tools and the benchmark protocol

# Chooses frames: (rgb timestamps [N], has a ground-truth pose [N] bool) -> indices into the rgb list.
FrameSelector = Callable[[np.ndarray, np.ndarray], np.ndarray]


def read_timestamped_list(path: Path, columns: int) -> tuple[np.ndarray, list[list[str]]]:
    """Timestamps float64 [N] (sorted) and the `columns` fields after each timestamp, from a TUM list file."""
    require_file(path, f"the TUM-format list {path.name}")
    rows = [line.replace(",", " ").split() for line in path.read_text().splitlines()]
    rows = [row for row in rows if row and not row[0].startswith("#")]
    bad = next((number for number, row in enumerate(rows, 1) if len(row) != columns + 1), None)
    if bad is not None:
        raise Geo4DError(
            f"{path} is not in TUM format: data line {bad} has {len(rows[bad - 1])} fields, expected "
            f"{columns + 1} (a timestamp and {columns} values)."
        )
    try:
        stamps = np.array([float(row[0]) for row in rows], dtype=np.float64)
    except ValueError as error:
        raise Geo4DError(f"{path} has a timestamp that is not a number ({error}).") from error
    order = np.argsort(stamps, kind="stable")
    return stamps[order], [rows[i][1:] for i in order]


def associate(
    first: np.ndarray, second: np.ndarray, max_difference: float = MAX_TIME_DIFFERENCE
) -> np.ndarray:
    """For each stamp of `first` [N], the index of its partner in `second` [M], or -1 (int64 [N]).

    Candidate pairs closer than max_difference are accepted greedily from the closest, each stamp used
    at most once: the rule of TUM's associate.py. Both inputs must be sorted.
    """
    low = np.searchsorted(second, first - max_difference, side="left")
    high = np.searchsorted(second, first + max_difference, side="right")
    counts = high - low
    first_index = np.repeat(np.arange(len(first)), counts)
    second_index = np.repeat(low - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    difference = np.abs(first[first_index] - second[second_index])
    keep = difference < max_difference
    first_index, second_index, difference = first_index[keep], second_index[keep], difference[keep]
    partner = np.full(len(first), -1, dtype=np.int64)
    used = np.zeros(len(second), dtype=bool)
    for candidate in np.lexsort((second[second_index], first[first_index], difference)):
        i, j = first_index[candidate], second_index[candidate]
        if partner[i] < 0 and not used[j]:
            partner[i], used[j] = j, True
    return partner


def poses_from_tum(values: np.ndarray) -> np.ndarray:
    """Camera-to-world [N, 4, 4] float64 of TUM rows [N, 7] (tx ty tz qx qy qz qw), quaternions normalised."""
    translation, quaternion = values[:, :3], values[:, 3:]
    x, y, z, w = (quaternion / np.linalg.norm(quaternion, axis=1, keepdims=True)).T
    rotation = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )
    poses = np.tile(np.eye(4), (len(values), 1, 1))
    poses[:, :3, :3] = rotation
    poses[:, :3, 3] = translation
    return poses


def read_groundtruth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps [N] and camera-to-world [N, 4, 4] of a groundtruth.txt."""
    stamps, rows = read_timestamped_list(path, 7)
    try:
        values = np.array(rows, dtype=np.float64).reshape(-1, 7)
    except ValueError as error:
        raise Geo4DError(f"{path} has a pose value that is not a number ({error}).") from error
    if np.any(np.linalg.norm(values[:, 3:], axis=1) == 0):
        raise Geo4DError(f"{path} has a zero quaternion; every pose needs qx qy qz qw of unit length.")
    return stamps, poses_from_tum(values)


def read_rgbd_folder(
    folder: Path, name: str, spec: DatasetSpec, select: FrameSelector, camera_matrix: np.ndarray | None
) -> BenchmarkSequence:
    """One TUM-format sequence, with the frames `select` picks; depth and poses paired by timestamp.

    Frames without a depth image within 0.02 s get no depth (all invalid); frames without a pose
    within 0.02 s get a NaN pose. camera_matrix: the 3x3 OpenCV calibration of the sequence, or None.
    """
    rgb_stamps, rgb_rows = read_timestamped_list(folder / "rgb.txt", 1)
    depth_stamps, depth_rows = read_timestamped_list(folder / "depth.txt", 1)
    pose_stamps, poses = read_groundtruth(folder / "groundtruth.txt")
    pose_partner = associate(rgb_stamps, pose_stamps)
    chosen = np.asarray(select(rgb_stamps, pose_partner >= 0), dtype=np.int64)
    if chosen.size == 0:
        raise Geo4DError(
            f"{folder} has no usable frames: rgb.txt lists {len(rgb_stamps)} images, "
            f"{int((pose_partner >= 0).sum())} with a ground-truth pose within {MAX_TIME_DIFFERENCE} s."
        )
    frame_files = tuple(folder / rgb_rows[i][0] for i in chosen)
    require_matching(frame_files, f"the colour image listed in {folder / 'rgb.txt'}")
    depth_partner = associate(rgb_stamps, depth_stamps)[chosen]
    depth_files = tuple(folder / depth_rows[j][0] if j >= 0 else None for j in depth_partner)
    require_matching(
        [path for path in depth_files if path is not None],
        f"the depth image listed in {folder / 'depth.txt'}",
    )
    if (depth_partner < 0).any():
        logger.warning(
            "%s: %d of %d frames have no depth image within %s s.",
            name,
            (depth_partner < 0).sum(),
            len(chosen),
            MAX_TIME_DIFFERENCE,
        )
    camera_to_world = np.full((len(chosen), 4, 4), np.nan)
    has_pose = pose_partner[chosen] >= 0
    camera_to_world[has_pose] = poses[pose_partner[chosen][has_pose]]
    intrinsics = (
        None if camera_matrix is None else np.tile(intrinsics_from_matrix(camera_matrix), (len(chosen), 1))
    )
    return BenchmarkSequence(
        dataset=spec.name,
        name=name,
        frame_files=frame_files,
        depth_files=depth_files,
        depth_reader=partial(read_depth_png, units_per_metre=DEPTH_UNITS_PER_METRE),
        camera_to_world=camera_to_world,
        intrinsics=intrinsics,
        frame_indices=chosen,
        fps=spec.fps,
        input_size=spec.input_size,
        max_depth=spec.max_depth,
    )

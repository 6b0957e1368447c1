"""TUM RGB-D dynamic-object sequences (camera pose benchmark): 90 frames at stride 3 per sequence.

Layout: ROOT/rgbd_dataset_freiburg3_walking_xyz/{rgb.txt, depth.txt, groundtruth.txt, rgb/, depth/}, as
the dataset's .tgz archives unpack. The protocol pairs each colour image with its ground-truth pose
(0.02 s), keeps the paired frames, and takes every third of them, 90 at most.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .sequence import BenchmarkSequence, DatasetSpec, choose_names, require_dir
from .tum_format import read_rgbd_folder

logger = logging.getLogger(__name__)

PROTOCOL_SEQUENCES = tuple(
    f"rgbd_dataset_freiburg3_{motion}_{path}"
    for motion in ("sitting", "walking")
    for path in ("static", "xyz", "halfsphere", "rpy")
)
FRAME_STRIDE = 3
MAX_FRAMES = 90

# OpenCV calibration (fx, fy, cx, cy) of each TUM sensor, from the dataset's documentation.
CALIBRATIONS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}


def camera_matrix(sequence_name: str) -> np.ndarray | None:
    """3x3 calibration of the sensor named in a sequence folder name, None for an unknown sensor."""
    sensor = next((key for key in CALIBRATIONS if key in sequence_name), None)
    if sensor is None:
        logger.warning(
            "%s names no known TUM sensor (freiburg1/2/3); its intrinsics are unknown.", sequence_name
        )
        return None
    fx, fy, cx, cy = CALIBRATIONS[sensor]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def select_protocol_frames(rgb_stamps: np.ndarray, has_pose: np.ndarray) -> np.ndarray:
    """Every third frame that has a ground-truth pose, at most 90."""
    return np.flatnonzero(has_pose)[::FRAME_STRIDE][:MAX_FRAMES]


def read_sequences(root: Path, task: str, names: Sequence[str] | None = None) -> list[BenchmarkSequence]:
    """The TUM-dynamics sequences under `root` (the protocol's eight unless `names` are given)."""
    require_dir(root, "the TUM RGB-D sequence folders (rgbd_dataset_freiburg3_*)")
    available = [path.name for path in root.iterdir() if (path / "rgb.txt").is_file()]
    chosen = choose_names(available, PROTOCOL_SEQUENCES, names, lambda name: root / name / "rgb.txt")
    return [
        read_rgbd_folder(root / name, name, SPEC, select_protocol_frames, camera_matrix(name))
        for name in chosen
    ]


SPEC = DatasetSpec(
    name="tum",
    title="TUM RGB-D dynamics",
    tasks=("pose",),
    input_size=(512, 384),
    fps=24.0,
    max_depth=None,
    read=read_sequences,
)

"""Bonn RGB-D dynamic sequences (video depth benchmark): five sequences, frames 30 to 139.

Layout: ROOT/rgbd_bonn_balloon2/{rgb.txt, depth.txt, groundtruth.txt, rgb/, depth/} (ROOT is the
rgbd_bonn_dataset folder of the distributed zip): the TUM format, depth PNGs in 1/5000 m.
groundtruth.txt holds the motion-capture poses as distributed (the protocol uses them unchanged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .sequence import BenchmarkSequence, DatasetSpec, choose_names, require_dir
from .tum_format import read_rgbd_folder

logger = logging.getLogger(__name__)

FOLDER_PREFIX = "rgbd_bonn_"
PROTOCOL_SEQUENCES = ("balloon2", "crowd2", "crowd3", "person_tracking2", "synchronous")
FIRST_FRAME, END_FRAME = 30, 140

# The dataset's published calibration of its one sensor (OpenCV convention).
CAMERA_MATRIX = np.array([[542.822841, 0.0, 315.593520], [0.0, 542.576870, 237.756098], [0.0, 0.0, 1.0]])


def select_protocol_frames(rgb_stamps: np.ndarray, has_pose: np.ndarray) -> np.ndarray:
    """Colour frames 30..139 in time order, whether or not they have a pose."""
    return np.arange(len(rgb_stamps))[FIRST_FRAME:END_FRAME]


def read_sequences(root: Path, task: str, names: Sequence[str] | None = None) -> list[BenchmarkSequence]:
    """Bonn sequences under `root`, named without the rgbd_bonn_ prefix (the protocol's five by default)."""
    require_dir(root, "the Bonn sequence folders (rgbd_bonn_*)")
    available = [
        path.name.removeprefix(FOLDER_PREFIX)
        for path in root.iterdir()
        if path.name.startswith(FOLDER_PREFIX) and (path / "rgb.txt").is_file()
    ]
    chosen = choose_names(
        available, PROTOCOL_SEQUENCES, names, lambda name: root / f"{FOLDER_PREFIX}{name}" / "rgb.txt"
    )
    return [
        read_rgbd_folder(root / f"{FOLDER_PREFIX}{name}", name, SPEC, select_protocol_frames, CAMERA_MATRIX)
        for name in chosen
    ]


SPEC = DatasetSpec(
    name="bonn",
    title="Bonn RGB-D dynamic",
    tasks=("depth",),
    input_size=(512, 384),
    fps=24.0,
    max_depth=70.0,
    read=read_sequences,
)

"""ScanNet v2 (camera pose benchmark): 90 frames at stride 3 of scenes 0707 to 0806, as exported from .sens.

Layout (each scene's .sens file exported by ScanNet's SensReader into ROOT/<scene>):
    ROOT/scene0707_00/color/0.jpg             colour frames, numbered from 0
    ROOT/scene0707_00/depth/0.png             uint16 depth in millimetres, 0 = no measurement
    ROOT/scene0707_00/pose/0.txt              4x4 camera-to-world (OpenCV axes, metres); -inf when unknown
    ROOT/scene0707_00/intrinsic/intrinsic_depth.txt   4x4 calibration of the depth maps
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ...errors import Geo4DError
from .image_files import read_depth_png
from .sequence import (
    BenchmarkSequence,
    DatasetSpec,
    choose_names,
    files_with_suffix,
    intrinsics_from_matrix,
    require_dir,
    require_file,
    require_matching,
)

logger = logging.getLogger(__name__)

DEPTH_UNITS_PER_METRE = 1000.0
PROTOCOL_SEQUENCES = tuple(f"scene{number:04d}_00" for number in range(707, 807))
FRAME_STRIDE = 3
MAX_FRAMES = 90


def read_matrix(path: Path, rows: int, columns: int) -> np.ndarray:
    """A whitespace-separated text matrix [rows, columns] float64 (inf and nan allowed)."""
    require_file(path, f"a {rows}x{columns} matrix")
    try:
        return np.loadtxt(path, dtype=np.float64).reshape(rows, columns)
    except ValueError as error:
        raise Geo4DError(f"{path} does not hold a {rows}x{columns} matrix of numbers ({error}).") from error


def numbered_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """Files named <integer><suffix> in numeric order (0, 1, 2, ..., 10, not 0, 1, 10, 2)."""
    files = [path for path in files_with_suffix(folder, suffixes, what) if path.stem.isdigit()]
    if not files:
        raise Geo4DError(
            f"Expected {what} named 0{suffixes[0]}, 1{suffixes[0]}, ... in {folder}, but found none."
        )
    return sorted(files, key=lambda path: int(path.stem))


def read_scene(root: Path, name: str) -> BenchmarkSequence:
    """One exported scene: every third colour frame of the first 270, with depth, pose and intrinsics."""
    scene = root / name
    colour = numbered_files(scene / "color", (".jpg", ".png"), f"the colour frames of {name}")
    chosen = colour[: FRAME_STRIDE * MAX_FRAMES : FRAME_STRIDE]
    depth_files = [scene / "depth" / f"{path.stem}.png" for path in chosen]
    pose_files = [scene / "pose" / f"{path.stem}.txt" for path in chosen]
    require_matching(depth_files, f"the depth image of each colour frame of {name}")
    require_matching(pose_files, f"the pose file of each colour frame of {name}")
    camera_to_world = np.stack([read_matrix(path, 4, 4) for path in pose_files])
    unknown = ~np.isfinite(camera_to_world).all(axis=(1, 2))
    camera_to_world[unknown] = np.nan
    if unknown.any():
        logger.warning(
            "%s: %d of %d chosen frames have no ground-truth pose.", name, unknown.sum(), len(chosen)
        )
    camera_matrix = read_matrix(scene / "intrinsic" / "intrinsic_depth.txt", 4, 4)[:3, :3]
    return BenchmarkSequence(
        dataset=SPEC.name,
        name=name,
        frame_files=tuple(chosen),
        depth_files=tuple(depth_files),
        depth_reader=partial(read_depth_png, units_per_metre=DEPTH_UNITS_PER_METRE),
        camera_to_world=camera_to_world,
        intrinsics=np.tile(intrinsics_from_matrix(camera_matrix), (len(chosen), 1)),
        frame_indices=np.array([int(path.stem) for path in chosen], dtype=np.int64),
        fps=SPEC.fps,
        input_size=SPEC.input_size,
        max_depth=SPEC.max_depth,
    )


def read_sequences(root: Path, task: str, names: Sequence[str] | None = None) -> list[BenchmarkSequence]:
    """The exported ScanNet scenes under `root` (the protocol's 100 unless `names` are given)."""
    require_dir(root, "the exported ScanNet scenes (scene0707_00, ...)")
    available = [path.name for path in root.iterdir() if (path / "color").is_dir()]
    chosen = choose_names(available, PROTOCOL_SEQUENCES, names, lambda name: root / name / "color" / "0.jpg")
    return [read_scene(root, name) for name in chosen]


SPEC = DatasetSpec(
    name="scannet",
    title="ScanNet v2",
    tasks=("pose",),
    input_size=(512, 384),
    fps=24.0,
    max_depth=None,
    read=read_sequences,
)

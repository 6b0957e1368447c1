"""MPI Sintel (video depth and camera pose benchmark): final-pass frames, .dpt depth and .cam cameras.

Layout (ROOT is where MPI-Sintel-training_images.zip and MPI-Sintel-depth-training-20150305.zip unpack):
    ROOT/training/final/<sequence>/frame_0001.png
    ROOT/training/depth/<sequence>/frame_0001.dpt          float32 tag 202021.25, int32 width, int32 height,
                                                           then width*height float32 depths (little endian)
    ROOT/training/camdata_left/<sequence>/frame_0001.cam   float32 tag, float64 3x3 intrinsics, float64 3x4
                                                           world-to-camera (OpenCV axes)
Depth uses every sequence; pose uses the 14 sequences with camera motion and moving objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import Geo4DError
from .sequence import (
    BenchmarkSequence,
    DatasetSpec,
    choose_names,
    files_with_suffix,
    intrinsics_from_matrix,
    require_dir,
    require_matching,
)

logger = logging.getLogger(__name__)

TAG = np.float32(202021.25)
DPT_HEADER_BYTES = 12
CAM_BYTES = 4 + 9 * 8 + 12 * 8
MAX_PIXELS = 100_000_000

POSE_SEQUENCES = (
    "alley_2",
    "ambush_4",
    "ambush_5",
    "ambush_6",
    "cave_2",
    "cave_4",
    "market_2",
    "market_5",
    "market_6",
    "shaman_3",
    "sleeping_1",
    "sleeping_2",
    "temple_2",
    "temple_3",
)


def _check_tag(data: bytes, path: Path) -> None:
    tag = np.frombuffer(data, dtype="<f4", count=1)[0] if len(data) >= 4 else None
    if tag != TAG:
        raise Geo4DError(
            f"{path} is not a Sintel file: it starts with {tag}, not the tag {TAG}. Replace the file."
        )


def read_dpt(path: str | Path) -> np.ndarray:
    """Depth float32 [H, W] in Sintel units (metres-like scene units, camera z) of a .dpt file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise Geo4DError(
            f"Expected the Sintel depth file {path}, but it cannot be read ({error.strerror})."
        ) from error
    _check_tag(data, path)
    if len(data) < DPT_HEADER_BYTES:
        raise Geo4DError(f"{path} is truncated: it ends inside its header.")
    width, height = (int(value) for value in np.frombuffer(data, dtype="<i4", count=2, offset=4))
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise Geo4DError(f"{path} declares an impossible size {width}x{height}; the file is damaged.")
    expected = DPT_HEADER_BYTES + 4 * width * height
    if len(data) != expected:
        raise Geo4DError(
            f"{path} has {len(data)} bytes; a {width}x{height} depth file has {expected}. It is damaged."
        )
    return np.frombuffer(data, dtype="<f4", offset=DPT_HEADER_BYTES).reshape(height, width).astype(np.float32)


def read_cam(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics [3, 3] and world-to-camera [3, 4] (float64, OpenCV convention) of a .cam file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise Geo4DError(
            f"Expected the Sintel camera file {path}, but it cannot be read ({error.strerror})."
        ) from error
    _check_tag(data, path)
    if len(data) != CAM_BYTES:
        raise Geo4DError(f"{path} has {len(data)} bytes; a Sintel .cam file has {CAM_BYTES}. It is damaged.")
    intrinsic = np.frombuffer(data, dtype="<f8", count=9, offset=4).reshape(3, 3)
    extrinsic = np.frombuffer(data, dtype="<f8", count=12, offset=4 + 9 * 8).reshape(3, 4)
    return intrinsic.copy(), extrinsic.copy()


def read_sequence(training: Path, name: str) -> BenchmarkSequence:
    """One sequence: every final-pass frame with its depth and camera files."""
    frame_files = files_with_suffix(training / "final" / name, (".png",), f"the final-pass frames of {name}")
    depth_files = [training / "depth" / name / f"{path.stem}.dpt" for path in frame_files]
    cam_files = [training / "camdata_left" / name / f"{path.stem}.cam" for path in frame_files]
    require_matching(depth_files, f"the depth file (.dpt) of each frame of {name}")
    require_matching(cam_files, f"the camera file (.cam) of each frame of {name}")
    cameras = [read_cam(path) for path in cam_files]
    intrinsic = np.stack([camera[0] for camera in cameras])
    world_to_camera = np.tile(np.eye(4), (len(cameras), 1, 1))
    world_to_camera[:, :3, :] = np.stack([camera[1] for camera in cameras])
    return BenchmarkSequence(
        dataset=SPEC.name,
        name=name,
        frame_files=tuple(frame_files),
        depth_files=tuple(depth_files),
        depth_reader=read_dpt,
        camera_to_world=np.linalg.inv(world_to_camera),
        intrinsics=intrinsics_from_matrix(intrinsic),
        frame_indices=np.arange(len(frame_files)),
        fps=SPEC.fps,
        input_size=SPEC.input_size,
        max_depth=SPEC.max_depth,
    )


def read_sequences(root: Path, task: str, names: Sequence[str] | None = None) -> list[BenchmarkSequence]:
    """Sintel sequences under ROOT/training: all of them for depth, the 14 dynamic ones for pose."""
    final = require_dir(
        root / "training" / "final", "the Sintel final-pass frames (training/final/<sequence>)"
    )
    available = [path.name for path in final.iterdir() if path.is_dir()]
    protocol = POSE_SEQUENCES if task == "pose" else None
    chosen = choose_names(available, protocol, names, lambda name: final / name / "frame_0001.png")
    return [read_sequence(root / "training", name) for name in chosen]


SPEC = DatasetSpec(
    name="sintel",
    title="MPI Sintel",
    tasks=("depth", "pose"),
    input_size=(576, 256),
    fps=24.0,
    max_depth=70.0,
    read=read_sequences,
)

"""The benchmark sequence every dataset reader yields, the dataset description, and shared reader checks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import Geo4DError
from .image_files import read_rgb

logger = logging.getLogger(__name__)

TASKS = ("depth", "pose")

DepthReader = Callable[[Path], np.ndarray]


@dataclass(frozen=True)
class BenchmarkSequence:
    """One evaluation sequence: which files to decode and the ground truth that is not in images.

    frame_files: T colour images (the model's input), in time order.
    depth_files: T ground-truth depth files read by `depth_reader` (path -> float32 [H, W] metres of
        camera z, 0 where the sensor measured nothing); an entry is None for a frame without a depth
        image (all its pixels invalid); None when the dataset has no depth.
    camera_to_world: [T, 4, 4] float64 ground-truth poses, OpenCV camera axes, the dataset's world
        frame and metres; rows of frames without a pose are NaN. None when the dataset has no poses.
    intrinsics: [T, 4] float64 (fx, fy, cx, cy) in pixels of the depth maps, principal point in the
        pixel-centre convention of core.camera (the centre of pixel (0, 0) is (0.5, 0.5)); None if unknown.
    frame_indices: [T] positions of the chosen frames among all frames of the sequence on disk.
    fps: the frame rate the protocol feeds the model; input_size: the model input (width, height);
    max_depth: the protocol's depth cap in metres for the depth metrics (None: no cap).
    """

    dataset: str
    name: str
    frame_files: tuple[Path, ...]
    depth_files: tuple[Path | None, ...] | None
    depth_reader: DepthReader | None
    camera_to_world: np.ndarray | None
    intrinsics: np.ndarray | None
    frame_indices: np.ndarray
    fps: float
    input_size: tuple[int, int]
    max_depth: float | None

    def __post_init__(self) -> None:
        frames = len(self.frame_files)
        if frames == 0:
            raise ValueError(f"{self.dataset} sequence {self.name} has no frames.")
        if (self.depth_files is None) != (self.depth_reader is None):
            raise ValueError("depth_files and depth_reader must be given together.")
        shapes = {
            "depth_files": (None if self.depth_files is None else (len(self.depth_files),), (frames,)),
            "camera_to_world": (
                None if self.camera_to_world is None else self.camera_to_world.shape,
                (frames, 4, 4),
            ),
            "intrinsics": (None if self.intrinsics is None else self.intrinsics.shape, (frames, 4)),
            "frame_indices": (np.shape(self.frame_indices), (frames,)),
        }
        for field_name, (shape, wanted) in shapes.items():
            if shape is not None and shape != wanted:
                raise ValueError(
                    f"BenchmarkSequence.{field_name} has shape {shape}; expected {wanted} ({frames} frames)."
                )

    @property
    def num_frames(self) -> int:
        return len(self.frame_files)

    @property
    def has_depth(self) -> bool:
        return self.depth_files is not None

    @property
    def has_poses(self) -> bool:
        return self.camera_to_world is not None

    @property
    def pose_valid(self) -> np.ndarray:
        """[T] bool: frames whose ground-truth pose is known (all False without poses)."""
        if self.camera_to_world is None:
            return np.zeros(self.num_frames, dtype=bool)
        return np.isfinite(self.camera_to_world).all(axis=(1, 2))

    def read_frame(self, index: int) -> np.ndarray:
        """The index-th frame as uint8 [H, W, 3] RGB."""
        return read_rgb(self.frame_files[index])

    def read_frames(self) -> np.ndarray:
        """All frames, uint8 [T, H, W, 3] RGB; a frame of another size than the first is an error."""
        return _stack([self.read_frame(i) for i in range(self.num_frames)], self.frame_files)

    def read_depth(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground truth depth float32 [T, H, W] in metres (camera z) and its valid mask bool [T, H, W].

        Valid = a finite, positive measurement; the protocol's cap (max_depth) is left to the metrics.
        """
        if self.depth_files is None or self.depth_reader is None:
            raise Geo4DError(f"The {self.dataset} sequence {self.name} has no ground-truth depth.")
        present = [index for index, path in enumerate(self.depth_files) if path is not None]
        if not present:
            raise Geo4DError(f"No frame of the {self.dataset} sequence {self.name} has a depth image.")
        paths = [self.depth_files[index] for index in present]
        measured = _stack([self.depth_reader(path) for path in paths], paths)
        depth = np.zeros((self.num_frames, *measured.shape[1:]), dtype=np.float32)
        depth[present] = measured
        valid = np.isfinite(depth) & (depth > 0)
        return np.where(valid, depth, np.float32(0.0)), valid


def _stack(images: list[np.ndarray], paths: Sequence[Path]) -> np.ndarray:
    first = images[0].shape
    for image, path in zip(images, paths, strict=True):
        if image.shape != first:
            raise Geo4DError(
                f"{path} has shape {image.shape}, but {paths[0]} has {first}; a sequence has one size."
            )
    return np.stack(images)


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark dataset: its protocol settings and the function that finds its sequences.

    read(root, task, names) -> sequences; `names` None means the protocol's sequences for `task`.
    """

    name: str
    title: str
    tasks: tuple[str, ...]
    input_size: tuple[int, int]
    fps: float
    max_depth: float | None
    read: Callable[[Path, str, Sequence[str] | None], list[BenchmarkSequence]]

    def __post_init__(self) -> None:
        unknown = [task for task in self.tasks if task not in TASKS]
        if not self.tasks or unknown:
            raise ValueError(f"DatasetSpec.tasks {self.tasks} must be a non-empty subset of {TASKS}.")
        width, height = self.input_size
        if width <= 0 or height <= 0 or width % 64 or height % 64:
            raise ValueError(f"DatasetSpec.input_size {self.input_size} must be positive multiples of 64.")
        if self.fps <= 0:
            raise ValueError(f"DatasetSpec.fps {self.fps} must be positive.")
        if self.max_depth is not None and self.max_depth <= 0:
            raise ValueError(f"DatasetSpec.max_depth {self.max_depth} must be positive or None.")


def intrinsics_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """(fx, fy, cx, cy) [..., 4] in our pixel-centre convention from 3x3 matrices [..., 3, 3].

    Dataset calibrations (Sintel, TUM, Bonn, KITTI, ScanNet) follow OpenCV, where pixel (0, 0) has
    its centre at (0, 0); here it is at (0.5, 0.5), so the principal point moves by half a pixel.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.stack(
        [matrix[..., 0, 0], matrix[..., 1, 1], matrix[..., 0, 2] + 0.5, matrix[..., 1, 2] + 0.5], axis=-1
    )


def require_dir(path: Path, what: str) -> Path:
    """`path` if it is a folder, else a Geo4DError saying what was expected there."""
    if not path.is_dir():
        raise Geo4DError(f"Expected {what} in the folder {path}, but it does not exist.")
    return path


def require_file(path: Path, what: str) -> Path:
    """`path` if it is a file, else a Geo4DError saying what was expected there."""
    if not path.is_file():
        raise Geo4DError(f"Expected {what} at {path}, but the file does not exist.")
    return path


def files_with_suffix(folder: Path, suffixes: Iterable[str], what: str) -> list[Path]:
    """The files of `folder` whose suffix is one of `suffixes`, sorted by name; none is an error."""
    suffixes = tuple(suffixes)
    files = sorted(path for path in require_dir(folder, what).iterdir() if path.suffix.lower() in suffixes)
    if not files:
        raise Geo4DError(f"Expected {what} ({' or '.join(suffixes)} files) in {folder}, but it holds none.")
    return files


def require_matching(expected: Sequence[Path], what: str) -> None:
    """Every path of `expected` must exist: a missing one is named, with how many are missing."""
    missing = [path for path in expected if not path.is_file()]
    if missing:
        raise Geo4DError(
            f"Expected {what} at {missing[0]}, but it does not exist "
            f"({len(missing)} of {len(expected)} missing). "
            "Every frame needs its own file; download the complete dataset."
        )


def choose_names(
    available: Sequence[str],
    protocol: Sequence[str] | None,
    names: Sequence[str] | None,
    expected_at: Callable[[str], Path],
) -> list[str]:
    """The sequences to read: `names` if given, else the protocol's list, else all available ones.

    A requested or protocol sequence that is not on disk is an error naming the file expected_at(name)
    that would have marked it.
    """
    wanted = (
        list(names) if names is not None else list(protocol) if protocol is not None else sorted(available)
    )
    if not wanted:
        raise Geo4DError(
            f"No sequences found: expected files such as {expected_at('NAME')}. "
            "Check the dataset root and its layout (README, Evaluation)."
        )
    missing = [name for name in wanted if name not in available]
    if missing:
        found = ", ".join(sorted(available)) or "none"
        raise Geo4DError(
            f"Sequence {missing[0]} is missing: expected {expected_at(missing[0])} ({len(missing)} of "
            f"{len(wanted)} sequences missing). Sequences found: {found}."
        )
    return wanted

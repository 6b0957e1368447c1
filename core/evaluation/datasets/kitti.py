"""KITTI depth (video depth benchmark): the first 110 annotated frames of each validation drive, left camera.

Two layouts are read (depth PNGs hold depth * 256 as uint16, 0 = no LiDAR point):
  raw + annotated (the protocol's source: data_depth_annotated.zip and the raw sync drives, in ROOT):
    ROOT/val/<drive>_sync/proj_depth/groundtruth/image_02/0000000005.png
    ROOT/<date>/<drive>_sync/image_02/data/0000000005.png
    ROOT/<date>/calib_cam_to_cam.txt        optional: intrinsics from P_rect_02
  val_selection_cropped (data_depth_selection.zip unpacked in ROOT):
    (ROOT/depth_selection/val_selection_cropped = SEL)
    SEL/groundtruth_depth/<drive>_sync_groundtruth_depth_<frame>_image_02.png
    SEL/image/<drive>_sync_image_<frame>_image_02.png
    SEL/intrinsics/<drive>_sync_image_<frame>_image_02.txt      the 3x3 intrinsics, 9 numbers
"""

from __future__ import annotations

import logging
import re
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
    require_matching,
)

logger = logging.getLogger(__name__)

DEPTH_UNITS_PER_METRE = 256.0
MAX_FRAMES = 110
CAMERA = "image_02"
ANNOTATED_DEPTH = Path("proj_depth") / "groundtruth" / CAMERA
CROPPED = Path("depth_selection") / "val_selection_cropped"
CROPPED_DEPTH_NAME = re.compile(
    r"^(?P<drive>\d{4}_\d{2}_\d{2}_drive_\d{4}_sync)_groundtruth_depth_(?P<frame>\d+)_image_02\.png$"
)


def drive_sequence(
    name: str,
    frame_files: list[Path],
    depth_files: list[Path],
    intrinsics: np.ndarray | None,
    frame_numbers: Sequence[int],
) -> BenchmarkSequence:
    """A drive's chosen frames; KITTI depth has no poses to compare against."""
    return BenchmarkSequence(
        dataset=SPEC.name,
        name=name,
        frame_files=tuple(frame_files),
        depth_files=tuple(depth_files),
        depth_reader=partial(read_depth_png, units_per_metre=DEPTH_UNITS_PER_METRE),
        camera_to_world=None,
        intrinsics=intrinsics,
        frame_indices=np.asarray(frame_numbers, dtype=np.int64),
        fps=SPEC.fps,
        input_size=SPEC.input_size,
        max_depth=SPEC.max_depth,
    )


def read_rectified_camera_matrix(calibration: Path, camera: str = "02") -> np.ndarray | None:
    """The 3x3 part of P_rect_<camera> in a KITTI calib_cam_to_cam.txt, None when the file is absent."""
    if not calibration.is_file():
        return None
    key = f"P_rect_{camera}:"
    line = next((line for line in calibration.read_text().splitlines() if line.startswith(key)), None)
    try:
        projection = np.array(line.split()[1:], dtype=np.float64).reshape(3, 4) if line else None
    except ValueError as error:
        raise Geo4DError(f"{calibration}: {key} does not hold 12 numbers ({error}).") from error
    if projection is None:
        raise Geo4DError(f"{calibration} has no {key} line; it is not a KITTI camera calibration.")
    return projection[:, :3]


def read_annotated_drive(root: Path, name: str) -> BenchmarkSequence:
    """One drive of the raw + annotated layout: its first 110 annotated frames."""
    depth_files = files_with_suffix(
        root / "val" / name / ANNOTATED_DEPTH, (".png",), f"the annotated depth of {name}"
    )
    depth_files = depth_files[:MAX_FRAMES]
    date = name[:10]
    frame_files = [root / date / name / CAMERA / "data" / path.name for path in depth_files]
    require_matching(
        frame_files, f"the raw left-camera image ({name}_sync.zip of the raw data) of each annotated frame"
    )
    camera_matrix = read_rectified_camera_matrix(root / date / "calib_cam_to_cam.txt")
    if camera_matrix is None:
        logger.info("%s: no %s; intrinsics unknown.", name, root / date / "calib_cam_to_cam.txt")
    intrinsics = (
        None
        if camera_matrix is None
        else np.tile(intrinsics_from_matrix(camera_matrix), (len(frame_files), 1))
    )
    return drive_sequence(
        name, frame_files, depth_files, intrinsics, [int(path.stem) for path in depth_files]
    )


def cropped_drives(cropped: Path) -> dict[str, list[tuple[int, Path]]]:
    """Ground-truth depth files of val_selection_cropped grouped by drive: (frame number, path), sorted."""
    drives: dict[str, list[tuple[int, Path]]] = {}
    for path in files_with_suffix(cropped / "groundtruth_depth", (".png",), "the cropped ground-truth depth"):
        match = CROPPED_DEPTH_NAME.match(path.name)
        if match:
            drives.setdefault(match["drive"], []).append((int(match["frame"]), path))
    return {drive: sorted(files) for drive, files in drives.items()}


def read_cropped_drive(cropped: Path, name: str, files: list[tuple[int, Path]]) -> BenchmarkSequence:
    """One drive of val_selection_cropped: its first 110 selected left-camera frames."""
    files = files[:MAX_FRAMES]
    depth_files = [path for _, path in files]
    stems = [path.stem.replace("_groundtruth_depth_", "_image_") for path in depth_files]
    frame_files = [cropped / "image" / f"{stem}.png" for stem in stems]
    intrinsic_files = [cropped / "intrinsics" / f"{stem}.txt" for stem in stems]
    require_matching(frame_files, f"the cropped image of each ground-truth depth of {name}")
    require_matching(intrinsic_files, f"the intrinsics file of each frame of {name}")
    try:
        matrices = np.stack([np.loadtxt(path, dtype=np.float64).reshape(3, 3) for path in intrinsic_files])
    except ValueError as error:
        raise Geo4DError(
            f"An intrinsics file of {name} in {cropped / 'intrinsics'} does not hold 9 numbers ({error})."
        ) from error
    return drive_sequence(
        name, frame_files, depth_files, intrinsics_from_matrix(matrices), [frame for frame, _ in files]
    )


def read_sequences(root: Path, task: str, names: Sequence[str] | None = None) -> list[BenchmarkSequence]:
    """KITTI validation drives under `root` (all found unless `names` are given), either layout."""
    if (root / "val").is_dir():
        available = [path.name for path in (root / "val").iterdir() if (path / ANNOTATED_DEPTH).is_dir()]
        chosen = choose_names(available, None, names, lambda name: root / "val" / name / ANNOTATED_DEPTH)
        return [read_annotated_drive(root, name) for name in chosen]
    cropped = root / CROPPED
    if (cropped / "groundtruth_depth").is_dir():
        drives = cropped_drives(cropped)
        depth_pattern = "NAME_groundtruth_depth_FRAME_image_02.png"
        chosen = choose_names(
            list(drives),
            None,
            names,
            lambda name: cropped / "groundtruth_depth" / depth_pattern.replace("NAME", name),
        )
        return [read_cropped_drive(cropped, name, drives[name]) for name in chosen]
    raise Geo4DError(
        f"{root} is not a KITTI depth root: expected the annotated depth in {root / 'val'} "
        f"(with the raw drives beside it) or the selection in {cropped / 'groundtruth_depth'}."
    )


SPEC = DatasetSpec(
    name="kitti",
    title="KITTI depth",
    tasks=("depth",),
    input_size=(640, 192),
    fps=10.0,
    max_depth=None,
    read=read_sequences,
)

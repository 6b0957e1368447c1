"""The schema of reconstruction.json: one typed description, checked by the same rules when written and read.

numpy only: the Blender side reads results through this module. Every message names the field as it is
spelt in the JSON file ("camera_to_world[3]", "intrinsics.cx"), so that a reader can prefix the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import Geo4DError
from .json_checks import (
    checked_integer,
    checked_list,
    checked_object,
    checked_real,
    checked_texts,
    is_integer,
    is_real,
    one_line,
    shown,
)
from .motion_description import MotionDescription, read_motion

FORMAT_NAME = "geo4d-reconstruction"
FORMAT_VERSION = 1
JSON_NAME = "reconstruction.json"
DEPTH_NAME = "depth.npz"
FRAMES_DIR = "frames"
# Depth-map sides in pixels: Blender's largest render resolution.
MAX_IMAGE_SIDE = 65536
# Frame rates Blender can play (render.fps up to 32767, fps_base up to 1e6 for slow ones).
MIN_FPS, MAX_FPS = 0.001, 32767.0
# Source frame numbers are stored by readers as 32-bit ints (Blender frames, sequencer offsets).
SOURCE_FRAME_LIMIT = 2**31
# Camera positions in scene units: far beyond any reconstruction, well inside float32 (Blender's keys).
MAX_TRANSLATION = 1e9
# How far R^T R may stray from the identity, and the last row from [0, 0, 0, 1].
ROTATION_TOLERANCE = 1e-4
LAST_ROW_TOLERANCE = 1e-6
# What a reader suggests for a file that breaks the schema.
FIX_ADVICE = "Fix the file or reconstruct the result again."

# Top-level entries of the file; "format" and "version" are checked before these.
REQUIRED_ENTRIES = (
    "source",
    "fps",
    "width",
    "height",
    "intrinsics",
    "camera_to_world",
    "frames",
    "points",
    "settings",
    "timings",
    "warnings",
)
# settings["frame_mapping"] (core.frame_size.FrameMapping): whole-pixel sizes and crops, positive scales.
_MAPPING_SIZES = ("source_width", "source_height", "width", "height")
_MAPPING_CROPS = ("crop_left", "crop_top")
_MAPPING_SCALES = ("scale_x", "scale_y")


def frame_file_name(index: int) -> str:
    """Relative path of the PLY of the index-th frame of a result."""
    return f"{FRAMES_DIR}/{index:06d}.ply"


@dataclass
class Intrinsics:
    """Pinhole intrinsics in pixels of the depth maps; the pixel-centre convention of core.camera."""

    fx: float
    fy: float
    cx: float
    cy: float


@dataclass(frozen=True)
class PointOptions:
    """How the frame PLY files were thinned: minimum confidence, and at most this many points (None: all)."""

    min_confidence: float = 0.0
    max_points_per_frame: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "min_confidence", checked_real(self.min_confidence, "points.min_confidence"))
        if self.max_points_per_frame is not None:
            count = checked_integer(
                self.max_points_per_frame, "points.max_points_per_frame", 1, SOURCE_FRAME_LIMIT - 1
            )
            object.__setattr__(self, "max_points_per_frame", count)


@dataclass(frozen=True, eq=False)
class ResultDescription:
    """Everything in reconstruction.json, validated when built (ValueError naming the JSON field).

    source_video: path of the video as recorded (relative paths are relative to the result folder), or None.
    source_frames: T strictly increasing frame numbers of the source video, 0-based.
    fps: frames per second of the source. width, height: depth-map size in pixels.
    intrinsics: pinhole intrinsics in pixels of that size.
    camera_to_world: [T, 4, 4] float64 (read-only), OpenCV camera axes, a proper rotation per frame.
    frames: the T frame files, exactly frame_file_name(0..T-1).
    points, settings, timings (seconds per stage), warnings: as the pipeline recorded them.
    frame_confidence: per frame, how far the aligner trusts that frame's camera, in [0, 1]; None for
    results written before it was recorded (the entry is optional in the file).
    motion: the motion masks and static cloud (MotionDescription); None for results without masks.
    """

    source_video: str | None
    source_frames: tuple[int, ...]
    fps: float
    width: int
    height: int
    intrinsics: Intrinsics
    camera_to_world: np.ndarray
    frames: tuple[str, ...]
    points: PointOptions = field(default_factory=PointOptions)
    settings: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    frame_confidence: tuple[float, ...] | None = None
    motion: MotionDescription | None = None

    def __post_init__(self) -> None:
        def set_field(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if self.source_video is not None and not (
            isinstance(self.source_video, str) and self.source_video and "\0" not in self.source_video
        ):
            raise ValueError(f"source.video is {shown(self.source_video)}; it must be a path or null")
        set_field("source_frames", _source_frames(self.source_frames))
        set_field("fps", checked_real(self.fps, "fps", MIN_FPS, MAX_FPS))
        set_field("width", checked_integer(self.width, "width", 1, MAX_IMAGE_SIDE))
        set_field("height", checked_integer(self.height, "height", 1, MAX_IMAGE_SIDE))
        set_field("intrinsics", _intrinsics(self.intrinsics))
        set_field("frames", _frame_names(self.frames))
        set_field("camera_to_world", _camera_poses(self.camera_to_world))
        count = len(self.frames)
        for name, entries in (
            ("source.frames", self.source_frames),
            ("camera_to_world", self.camera_to_world),
        ):
            if len(entries) != count:
                raise ValueError(
                    f"{name} has {len(entries)} entries but frames has {count}; the file is inconsistent "
                    "(one entry per frame)"
                )
        if not isinstance(self.points, PointOptions):
            raise ValueError(
                f"points is {shown(self.points)}; it must hold min_confidence and max_points_per_frame"
            )
        set_field("settings", _settings(self.settings))
        set_field("timings", _timings(self.timings))
        set_field("warnings", checked_texts(self.warnings, "warnings"))
        if self.frame_confidence is not None:
            set_field("frame_confidence", _frame_confidence(self.frame_confidence, count))
        if self.motion is not None and not isinstance(self.motion, MotionDescription):
            raise ValueError(f"motion is {shown(self.motion)}; it must hold threshold and frames")

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def split(self) -> bool:
        """The frame PLYs hold only moving points; static.ply holds the fused set."""
        return self.motion is not None and self.motion.split

    def to_json(self) -> dict:
        """The content of reconstruction.json (json.dumps of it is the file)."""
        k = self.intrinsics
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source": {"video": self.source_video, "frames": list(self.source_frames)},
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "intrinsics": {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy},
            "camera_to_world": self.camera_to_world.tolist(),
            "frames": list(self.frames),
            "points": {
                "min_confidence": self.points.min_confidence,
                "max_points_per_frame": self.points.max_points_per_frame,
            },
            "settings": self.settings,
            "timings": self.timings,
            "warnings": list(self.warnings),
            **({} if self.frame_confidence is None else {"frame_confidence": list(self.frame_confidence)}),
            **({} if self.motion is None else {"motion": self.motion.to_json()}),
        }


def parse_description(data: str | bytes | Mapping, path: str | Path = JSON_NAME) -> ResultDescription:
    """The validated description of reconstruction.json text (or its parsed content) from `path`.

    Raises Geo4DError with one line naming `path` and the field for anything that breaks the schema.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, over-long integers, deep nesting
            raise Geo4DError(
                f"{path} is damaged and cannot be parsed ({one_line(error)}). {FIX_ADVICE}"
            ) from error
    if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
        raise Geo4DError(f"{path} is not a Geo4D reconstruction (its 'format' is not '{FORMAT_NAME}').")
    version = data.get("version")
    if not is_integer(version) or version != FORMAT_VERSION:
        raise Geo4DError(
            f"{path} has format version {shown(version)}; this add-on reads version {FORMAT_VERSION}. "
            "Update the add-on or reconstruct again."
        )
    try:
        missing = [key for key in REQUIRED_ENTRIES if key not in data]
        if missing:
            raise ValueError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
        source = checked_object(data["source"], "source", ("video", "frames"))
        k = checked_object(data["intrinsics"], "intrinsics", ("fx", "fy", "cx", "cy"))
        points = checked_object(data["points"], "points", ("min_confidence", "max_points_per_frame"))
        return ResultDescription(
            source_video=source["video"],
            source_frames=source["frames"],
            fps=data["fps"],
            width=data["width"],
            height=data["height"],
            intrinsics=Intrinsics(k["fx"], k["fy"], k["cx"], k["cy"]),
            camera_to_world=data["camera_to_world"],
            frames=data["frames"],
            points=PointOptions(points["min_confidence"], points["max_points_per_frame"]),
            settings=data["settings"],
            timings=data["timings"],
            warnings=data["warnings"],
            frame_confidence=data.get("frame_confidence"),
            motion=read_motion(data.get("motion")),
        )
    except ValueError as error:
        raise Geo4DError(f"{path}: {error}. {FIX_ADVICE}") from error


def _source_frames(value: object) -> tuple[int, ...]:
    """Non-negative, strictly increasing source frame numbers below SOURCE_FRAME_LIMIT."""
    frames = checked_list(value, "source.frames", "frame numbers")
    for index, number in enumerate(frames):
        checked_integer(number, f"source.frames[{index}]", 0, SOURCE_FRAME_LIMIT - 1)
    repeated = np.flatnonzero(np.diff(np.asarray(frames, dtype=np.int64)) <= 0)
    if len(repeated):
        index = int(repeated[0]) + 1
        raise ValueError(
            f"source.frames[{index}] is {frames[index]} after {frames[index - 1]}; "
            "source frame numbers must strictly increase"
        )
    return tuple(int(number) for number in frames)


def _intrinsics(value: object) -> Intrinsics:
    if not isinstance(value, Intrinsics):
        raise ValueError(f"intrinsics is {shown(value)}; it must hold fx, fy, cx, cy")
    return Intrinsics(
        fx=checked_real(value.fx, "intrinsics.fx", positive=True),
        fy=checked_real(value.fy, "intrinsics.fy", positive=True),
        cx=checked_real(value.cx, "intrinsics.cx"),
        cy=checked_real(value.cy, "intrinsics.cy"),
    )


def _frame_names(value: object) -> tuple[str, ...]:
    """Exactly frames/000000.ply, frames/000001.ply, ... (so no name can leave the result folder)."""
    names = checked_list(value, "frames", "frame file names")
    if not names:
        raise ValueError("frames is empty; a result has at least one frame")
    for index, name in enumerate(names):
        if name != frame_file_name(index):
            raise ValueError(
                f"frames[{index}] is {shown(name)}; it must be '{frame_file_name(index)}' "
                f"(frame files are {FRAMES_DIR}/NNNNNN.ply in order)"
            )
    return tuple(names)


def _camera_poses(value: object) -> np.ndarray:
    """[T, 4, 4] float64, read-only: finite, last row [0, 0, 0, 1], a proper rotation, a bounded position."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf" or value.ndim != 3 or value.shape[1:] != (4, 4):
            raise ValueError(
                f"camera_to_world has shape {value.shape} ({value.dtype}); it must be [T, 4, 4] numbers"
            )
        matrices = value.astype(np.float64)
    else:
        entries = checked_list(value, "camera_to_world", "4x4 matrices")
        matrices = np.zeros((len(entries), 4, 4))
        for index, entry in enumerate(entries):
            matrices[index] = _matrix(entry, index)
    _refuse_first(~np.isfinite(matrices).all(axis=(1, 2)), "holds NaN or infinite values")
    rotations = matrices[:, :3, :3]
    determinants = np.linalg.det(rotations)
    skew = np.abs(np.swapaxes(rotations, 1, 2) @ rotations - np.eye(3)).max(axis=(1, 2))
    improper = (skew > ROTATION_TOLERANCE) | (determinants <= 0)
    if improper.any():
        index = int(np.flatnonzero(improper)[0])
        raise ValueError(
            f"camera_to_world[{index}] is not a rotation (det {determinants[index]:.3g}, R^T R off the identity "
            f"by {skew[index]:.3g}); each camera needs a proper rotation and a position"
        )
    last_row = np.abs(matrices[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1)
    _refuse_first(last_row > LAST_ROW_TOLERANCE, "has a last row other than [0, 0, 0, 1]")
    far = np.abs(matrices[:, :3, 3]).max(axis=1) > MAX_TRANSLATION
    _refuse_first(far, f"puts the camera beyond {MAX_TRANSLATION:g} scene units")
    matrices.flags.writeable = False
    return matrices


def _matrix(entry: object, index: int) -> np.ndarray:
    """One 4x4 matrix of JSON numbers as float64."""
    rows = entry if isinstance(entry, list | tuple) and len(entry) == 4 else None
    if rows is None or not all(
        isinstance(row, list | tuple) and len(row) == 4 and all(is_real(number) for number in row)
        for row in rows
    ):
        raise ValueError(f"camera_to_world[{index}] is {shown(entry)}; it must be a 4x4 matrix of numbers")
    try:
        return np.array(rows, dtype=np.float64)
    except OverflowError as error:
        raise ValueError(f"camera_to_world[{index}] holds a number beyond the float range") from error


def _refuse_first(bad: np.ndarray, problem: str) -> None:
    if bad.any():
        raise ValueError(f"camera_to_world[{int(np.flatnonzero(bad)[0])}] {problem}")


def _settings(value: object) -> dict:
    """A JSON object (a fresh copy), with the entries readers rely on checked: frame_mapping, reconstruction."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"settings is {shown(value)}; it must be an object")
    try:
        settings = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(f"settings cannot be stored as JSON ({one_line(error)})") from error
    if "reconstruction" in settings:
        checked_object(settings["reconstruction"], "settings.reconstruction", ())
    if "frame_mapping" in settings:
        keys = _MAPPING_SIZES + _MAPPING_CROPS + _MAPPING_SCALES
        mapping = checked_object(settings["frame_mapping"], "settings.frame_mapping", keys)
        for key in _MAPPING_SIZES:
            checked_integer(mapping[key], f"settings.frame_mapping.{key}", 1, 2**31 - 1)
        for key in _MAPPING_CROPS:
            checked_integer(mapping[key], f"settings.frame_mapping.{key}", 0, 2**31 - 1)
        for key in _MAPPING_SCALES:
            checked_real(mapping[key], f"settings.frame_mapping.{key}", positive=True)
    return settings


def _timings(value: object) -> dict[str, float]:
    """Seconds per stage: finite, non-negative numbers under string keys."""
    if not isinstance(value, Mapping):
        raise ValueError(f"timings is {shown(value)}; it must be an object of seconds")
    timings = {}
    for key, seconds in value.items():
        if not isinstance(key, str):
            raise ValueError(f"timings has the key {shown(key)}; keys must be stage names")
        timings[key] = checked_real(seconds, f"timings.{key}", low=0.0)
    return timings


def _frame_confidence(value: object, count: int) -> tuple[float, ...]:
    """One number in 0..1 per frame."""
    entries = checked_list(value, "frame_confidence", "numbers in 0..1")
    if len(entries) != count:
        raise ValueError(
            f"frame_confidence has {len(entries)} entries but frames has {count}; the file is inconsistent "
            "(one entry per frame)"
        )
    return tuple(
        checked_real(entry, f"frame_confidence[{index}]", 0.0, 1.0) for index, entry in enumerate(entries)
    )

"""A reconstruction on disk: the one interface between the engine and Blender (numpy only).

Layout of a result folder:
    reconstruction.json   format and version, source video and frame indices, fps, depth-map size,
                          intrinsics fx fy cx cy (pixels of that size), camera_to_world per frame
                          (OpenCV axes, one world frame), settings, timings, warnings, and
                          optionally frame_confidence (per frame, 0..1); its schema is
                          core.result_description, which both the writer and every reader go through
    frames/NNNNNN.ply     per frame: world x y z, the video's 8-bit red green blue, confidence
    depth.npz             depth [T, H, W] float32 (camera z, 0 where there is no point),
                          confidence [T, H, W] float32, color [T, H, W, 3] uint8
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .camera import pixel_centre, transform_points, unproject_depth
from .errors import Geo4DError
from .output_folder import RESULT_LAYOUT, write_folder
from .ply import read_points, write_points
from .result_description import (
    DEPTH_NAME,
    FRAMES_DIR,
    JSON_NAME,
    Intrinsics,
    PointOptions,
    ResultDescription,
    frame_file_name,
    parse_description,
)


@dataclass
class Reconstruction:
    """Cameras, dense depth and colour for T frames of a video.

    camera_to_world: [T, 4, 4] float64, OpenCV camera axes, one world frame.
    depth: [T, H, W] float32 camera z; 0 or non-finite marks pixels without a point (sky, invalid).
    confidence: [T, H, W] float32, larger is more certain.
    color: [T, H, W, 3] uint8, the video's own RGB at each depth pixel.
    source_frames: [T] indices of the covered frames in the source video.
    frame_confidence: [T] float32 in [0, 1], how far the aligner trusts each frame's camera; None when
    not known (ground truth, results written before it was recorded).
    """

    camera_to_world: np.ndarray
    intrinsics: Intrinsics
    depth: np.ndarray
    confidence: np.ndarray
    color: np.ndarray
    fps: float
    source_video: str | None = None
    source_frames: np.ndarray | None = None
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    frame_confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.camera_to_world = np.asarray(self.camera_to_world, dtype=np.float64)
        self.depth = np.asarray(self.depth, dtype=np.float32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        self.color = np.asarray(self.color, dtype=np.uint8)
        frames, height, width = self.depth.shape
        if self.source_frames is None:
            self.source_frames = np.arange(frames)
        self.source_frames = np.asarray(self.source_frames, dtype=np.int64)
        expected = {
            "camera_to_world": (self.camera_to_world.shape, (frames, 4, 4)),
            "confidence": (self.confidence.shape, (frames, height, width)),
            "color": (self.color.shape, (frames, height, width, 3)),
            "source_frames": (self.source_frames.shape, (frames,)),
        }
        if self.frame_confidence is not None:
            self.frame_confidence = np.asarray(self.frame_confidence, dtype=np.float32)
            expected["frame_confidence"] = (self.frame_confidence.shape, (frames,))
        for name, (shape, wanted) in expected.items():
            if shape != wanted:
                raise ValueError(
                    f"Reconstruction.{name} has shape {shape}; expected {wanted} for depth {frames}x{height}x{width}."
                )
        if not np.isfinite(self.camera_to_world).all():
            raise ValueError("Reconstruction.camera_to_world contains NaN or infinite values.")

    @property
    def num_frames(self) -> int:
        return self.depth.shape[0]

    @property
    def height(self) -> int:
        return self.depth.shape[1]

    @property
    def width(self) -> int:
        return self.depth.shape[2]

    def valid_mask(self, min_confidence: float = 0.0) -> np.ndarray:
        """[T, H, W] bool: pixels that carry a point (positive finite depth, enough confidence)."""
        return _carries_point(self.depth, self.confidence, min_confidence)

    def frame_points(
        self, index: int, min_confidence: float = 0.0, max_points: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points of one frame: xyz [N, 3] float32, rgb [N, 3] uint8, confidence [N] float32.

        With max_points, an evenly spaced subset of the valid pixels in raster order is kept. A pixel whose
        world point is not finite in float32 (broken intrinsics, depth or pose overflowing) carries no point.
        """
        k = self.intrinsics
        rows, cols = np.nonzero(_carries_point(self.depth[index], self.confidence[index], min_confidence))
        if max_points is not None and len(rows) > max_points:
            keep = np.linspace(0, len(rows) - 1, max_points).round().astype(np.int64)
            rows, cols = rows[keep], cols[keep]
        depth = self.depth[index, rows, cols].astype(np.float64)
        u, v = pixel_centre(cols), pixel_centre(rows)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            camera = np.stack([(u - k.cx) / k.fx * depth, (v - k.cy) / k.fy * depth, depth], axis=-1)
            world = transform_points(self.camera_to_world[index], camera).astype(np.float32)
        finite = np.isfinite(world).all(axis=1)
        rows, cols = rows[finite], cols[finite]
        return world[finite], self.color[index, rows, cols], self.confidence[index, rows, cols]

    def world_points(self) -> np.ndarray:
        """[T, H, W, 3] world points of every pixel (meaningless where valid_mask is False)."""
        k = self.intrinsics
        camera = unproject_depth(np.nan_to_num(self.depth), k.fx, k.fy, k.cx, k.cy)
        rotation = self.camera_to_world[:, None, None, :3, :3]
        translation = self.camera_to_world[:, None, None, :3, 3]
        return (rotation @ camera[..., None])[..., 0] + translation

    def save(
        self, folder: str | Path, min_confidence: float = 0.0, max_points_per_frame: int | None = None
    ) -> Path:
        """Write the result folder by core.output_folder's contract: staged beside it and swapped in by
        renames; an earlier result of ours is replaced, anything else (or the source video's folder) refused."""
        inputs = [self.source_video] if self.source_video and Path(self.source_video).is_absolute() else []
        return write_folder(
            folder,
            RESULT_LAYOUT,
            lambda staging: self.write_files(staging, min_confidence, max_points_per_frame),
            inputs,
        )

    def description(
        self, min_confidence: float = 0.0, max_points_per_frame: int | None = None
    ) -> ResultDescription:
        """What reconstruction.json says of this result saved with these point options.

        Raises ValueError naming the field (as the file spells it) that breaks the result schema.
        """
        return ResultDescription(
            source_video=self.source_video,
            source_frames=self.source_frames.tolist(),
            fps=self.fps,
            width=self.width,
            height=self.height,
            intrinsics=self.intrinsics,
            camera_to_world=self.camera_to_world,
            frames=[frame_file_name(i) for i in range(self.num_frames)],
            points=PointOptions(min_confidence, max_points_per_frame),
            settings=self.settings,
            timings=self.timings,
            warnings=self.warnings,
            frame_confidence=None if self.frame_confidence is None else self.frame_confidence.tolist(),
        )

    def write_files(self, folder: Path, min_confidence: float, max_points_per_frame: int | None) -> None:
        """Write the result's files into the existing empty `folder` (a staging folder: see save())."""
        try:
            description = self.description(min_confidence, max_points_per_frame)
        except ValueError as error:
            raise Geo4DError(f"The result cannot be saved: {error}.") from error
        (folder / FRAMES_DIR).mkdir()
        for index in range(self.num_frames):
            write_points(
                folder / frame_file_name(index),
                *self.frame_points(index, min_confidence, max_points_per_frame),
            )
        write_npz(folder / DEPTH_NAME, depth=self.depth, confidence=self.confidence, color=self.color)
        (folder / JSON_NAME).write_text(json.dumps(description.to_json(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> Reconstruction:
        """Read a result folder, checking that its files agree with each other."""
        folder = Path(folder)
        description = read_description(folder)
        depth_path = folder / DEPTH_NAME
        try:
            with np.load(depth_path) as arrays:
                depth, confidence, color = arrays["depth"], arrays["confidence"], arrays["color"]
        except FileNotFoundError as error:
            raise Geo4DError(
                f"{depth_path} is missing: the result folder is incomplete. Reconstruct again."
            ) from error
        except (OSError, ValueError, KeyError) as error:
            raise Geo4DError(f"{depth_path} is damaged ({error}). Reconstruct again.") from error
        shape = (description.num_frames, description.height, description.width)
        if depth.shape != shape:
            raise Geo4DError(
                f"{depth_path} holds depth of shape {depth.shape}, but {JSON_NAME} describes "
                f"{shape[0]} frames of {shape[2]}x{shape[1]}. The result is inconsistent."
            )
        try:
            return cls(
                camera_to_world=description.camera_to_world.copy(),
                intrinsics=description.intrinsics,
                depth=depth,
                confidence=confidence,
                color=color,
                fps=description.fps,
                source_video=description.source_video,
                source_frames=np.array(description.source_frames),
                settings=description.settings,
                timings=description.timings,
                warnings=list(description.warnings),
                frame_confidence=description.frame_confidence,
            )
        except ValueError as error:
            raise Geo4DError(f"{folder / JSON_NAME} is inconsistent: {error}") from error


def _carries_point(depth: np.ndarray, confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """Which pixels of depth/confidence maps of any shape carry a point."""
    return np.isfinite(depth) & (depth > 0) & (confidence >= min_confidence)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez's uncompressed .npz, with the archive closed on failure too: numpy leaves it open, and a
    disk-full error then comes back as a second traceback when the garbage collector closes it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def read_description(folder: str | Path) -> ResultDescription:
    """The validated reconstruction.json of a result folder, with its frame files checked to exist.

    This is all the Blender importer needs besides the PLY files: it never loads the dense maps.
    """
    folder = Path(folder)
    path = folder / JSON_NAME
    try:
        if not folder.is_dir():
            raise Geo4DError(f"{folder} is not a folder. Give the folder that holds {JSON_NAME}.")
        text = path.read_bytes()
        description = parse_description(text, path)
        absent = [name for name in description.frames if not (folder / name).is_file()]
    except FileNotFoundError as error:
        raise Geo4DError(f"{folder} is not a Geo4D result: {JSON_NAME} is missing.") from error
    except OSError as error:
        raise Geo4DError(f"{path} cannot be read ({error.strerror or error}). Check the path.") from error
    if absent:
        raise Geo4DError(
            f"{folder} is incomplete: {len(absent)} of {description.num_frames} frame files are missing "
            f"(first: {absent[0]}). Reconstruct again."
        )
    return description


def read_frame_points(folder: str | Path, index: int) -> np.ndarray:
    """The structured point array (x y z red green blue confidence) of one frame of a result folder."""
    return read_points(Path(folder) / frame_file_name(index))

"""A reconstruction on disk: the one interface between the engine and Blender (numpy only).

Layout of a result folder:
    reconstruction.json   format and version, source video and frame indices, fps, depth-map size,
                          intrinsics fx fy cx cy (pixels of that size), camera_to_world per frame
                          (OpenCV axes, one world frame), settings, timings, warnings, and
                          optionally frame_confidence (per frame, 0..1); its schema is
                          core.result_description, which both the writer and every reader go through
    frames/NNNNNN.ply     per frame: world x y z, the video's 8-bit red green blue, confidence (a split
                          result: only the frame's moving points)
    depth.npz             depth [T, H, W] float32 (camera z, 0 where there is no point),
                          confidence [T, H, W] float32, color [T, H, W, 3] uint8
    motion.npz            optional: score [T, H, W] uint8, each pixel's motion score 0..255 for 0..1
                          (core.motion_masks; reconstruction.json's "motion" gives the threshold)
    static.ply            split results only: the fused static cloud of every frame (core.static_cloud)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .camera import pixel_centre, transform_points, unproject_depth
from .errors import Geo4DError
from .motion_description import MOTION_NAME, STATIC_NAME, MotionDescription
from .motion_masks import MotionMasks, scores_from_stored
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
from .static_cloud import fuse_static_points, write_static_cloud


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
    motion: per-pixel motion scores (core.motion_masks); None for results written without them.
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
    motion: MotionMasks | None = None

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
        if self.motion is not None:
            expected["motion.score"] = (self.motion.score.shape, (frames, height, width))
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
        self,
        index: int,
        min_confidence: float = 0.0,
        max_points: int | None = None,
        pixels: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points of one frame: xyz [N, 3] float32, rgb [N, 3] uint8, confidence [N] float32.

        pixels: [H, W] bool, only these pixels (None: all). With max_points, an evenly spaced subset of the valid pixels in raster order is kept. A pixel whose
        world point is not finite in float32 (broken intrinsics, depth or pose overflowing) carries no point.
        """
        k = self.intrinsics
        carries = _carries_point(self.depth[index], self.confidence[index], min_confidence)
        rows, cols = np.nonzero(carries if pixels is None else carries & pixels)
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
        self,
        folder: str | Path,
        min_confidence: float = 0.0,
        max_points_per_frame: int | None = None,
        split: bool = False,
    ) -> Path:
        """Write the result folder by core.output_folder's contract: staged beside it and swapped in by
        renames; an earlier result of ours is replaced, anything else (or the source video's folder) refused.
        split: frame PLYs of the moving points only, and static.ply (needs motion masks)."""
        inputs = [self.source_video] if self.source_video and Path(self.source_video).is_absolute() else []
        return write_folder(
            folder,
            RESULT_LAYOUT,
            lambda staging: self.write_files(staging, min_confidence, max_points_per_frame, split),
            inputs,
        )

    def description(
        self, min_confidence: float = 0.0, max_points_per_frame: int | None = None, split: bool = False
    ) -> ResultDescription:
        """What reconstruction.json says of this result saved with these point options (split: static_points
        is 0 until the static cloud is fused).

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
            motion=None
            if self.motion is None
            else MotionDescription(
                self.motion.threshold,
                "moving" if split else "all",
                0 if split else None,
                self.motion.camera_baseline,
            ),
        )

    def write_files(
        self, folder: Path, min_confidence: float, max_points_per_frame: int | None, split: bool = False
    ) -> None:
        """Write the result's files into the existing empty `folder` (a staging folder: see save())."""
        if split and self.motion is None:
            raise Geo4DError(
                "The result cannot be split into static and moving points: it has no motion masks. "
                "Save it with full frames."
            )
        try:
            description = self.description(min_confidence, max_points_per_frame, split)
        except ValueError as error:
            raise Geo4DError(f"The result cannot be saved: {error}.") from error
        moving = None
        if split:
            moving = self.motion.moving()
            cloud = fuse_static_points(self, self.valid_mask(min_confidence) & ~moving)
            write_static_cloud(folder / STATIC_NAME, cloud)
            description = replace(description, motion=replace(description.motion, static_points=len(cloud)))
        (folder / FRAMES_DIR).mkdir()
        for index in range(self.num_frames):
            write_points(
                folder / frame_file_name(index),
                *self.frame_points(
                    index, min_confidence, max_points_per_frame, None if moving is None else moving[index]
                ),
            )
        write_npz(folder / DEPTH_NAME, depth=self.depth, confidence=self.confidence, color=self.color)
        if self.motion is not None:
            write_npz(folder / MOTION_NAME, score=self.motion.stored_scores())
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
        motion = None if description.motion is None else _read_motion(folder, description)
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
                motion=motion,
            )
        except ValueError as error:
            raise Geo4DError(f"{folder / JSON_NAME} is inconsistent: {error}") from error


def _read_motion(folder: Path, description: ResultDescription) -> MotionMasks:
    """The motion masks that reconstruction.json's "motion" entry announces, from motion.npz."""
    path = folder / MOTION_NAME
    try:
        with np.load(path) as arrays:
            stored = arrays["score"]
    except FileNotFoundError as error:
        raise Geo4DError(f"{path} is missing: the result folder is incomplete. Reconstruct again.") from error
    except (OSError, ValueError, KeyError) as error:
        raise Geo4DError(f"{path} is damaged ({error}). Reconstruct again.") from error
    shape = (description.num_frames, description.height, description.width)
    if stored.shape != shape or stored.dtype != np.uint8:
        raise Geo4DError(
            f"{path} holds scores of shape {stored.shape} ({stored.dtype}), but {JSON_NAME} describes "
            f"{shape[0]} frames of {shape[2]}x{shape[1]} (uint8). The result is inconsistent."
        )
    return MotionMasks(
        scores_from_stored(stored), description.motion.threshold, description.motion.camera_baseline, []
    )


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
    if description.split and not (folder / STATIC_NAME).is_file():
        raise Geo4DError(
            f"{folder} is incomplete: {STATIC_NAME} (the static cloud its {JSON_NAME} announces) is missing. "
            "Reconstruct again."
        )
    return description


def read_static_points(folder: str | Path) -> np.ndarray:
    """The structured point array of a split result's static.ply, checked like every point file."""
    return read_points(Path(folder) / STATIC_NAME)


def read_frame_points(folder: str | Path, index: int) -> np.ndarray:
    """The structured point array (x y z red green blue confidence) of one frame of a result folder."""
    return read_points(Path(folder) / frame_file_name(index))

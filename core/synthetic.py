"""Synthetic dynamic scenes with exact ground truth: a vectorised ray caster and the result writer.

One ray per pixel centre (core.camera's convention) is cast through the procedural scene of
core.synthetic_scene, so depth, cameras and intrinsics are exact by construction: unprojecting a
pixel's depth gives the very surface point whose colour the pixel shows. Moving objects are posed
at each frame's time, so each frame's depth is that frame's geometry.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .camera import pixel_centers
from .errors import Geo4DError
from .progress import CancelCheck, ProgressCallback, Reporter
from .result import Intrinsics, Reconstruction
from .synthetic_scene import build_scene
from .video import read_frames, write_video

logger = logging.getLogger(__name__)

VIDEO_NAME = "video.mp4"
AMBIENT = 0.35


@dataclass(frozen=True)
class SceneConfig:
    """What to render: clip length, image size (pixels), scene seed and frame rate."""

    frames: int = 48
    width: int = 512
    height: int = 320
    seed: int = 0
    fps: float = 24.0

    def __post_init__(self) -> None:
        limits = {"frames": (1, 100_000), "width": (8, 8192), "height": (8, 8192), "seed": (0, 2**63 - 1)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"SceneConfig.{name} = {value!r}; expected an integer in [{low}, {high}]")
        if not 0 < self.fps <= 240:
            raise ValueError(f"SceneConfig.fps = {self.fps!r}; expected a frame rate in (0, 240]")


@dataclass
class FrameRender:
    """One rendered frame. depth [H, W] float32 camera z (0 on sky); color [H, W, 3] uint8 RGB;
    surface [H, W] int32: which surface each pixel shows (ids as in core.synthetic_scene.Scene)."""

    depth: np.ndarray
    color: np.ndarray
    surface: np.ndarray


class Renderer:
    """Casts one ray per pixel centre through the scene of a config, one frame at a time."""

    def __init__(self, config: SceneConfig) -> None:
        self.config = config
        self.scene = build_scene(config.seed)
        focal = config.width / 2 / math.tan(self.scene.horizontal_fov / 2)
        self.intrinsics = Intrinsics(focal, focal, config.width / 2, config.height / 2)
        self.times = np.arange(config.frames) / config.fps
        self.camera_to_world = self.scene.camera.camera_to_world(self.times)
        u, v = pixel_centers(config.height, config.width, dtype=np.float64)
        k = self.intrinsics
        # Camera-frame ray directions with z = 1, so a hit's ray parameter is its depth.
        self._rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)], axis=-1).reshape(-1, 3)

    def render(self, index: int) -> FrameRender:
        """Ray-cast frame `index`: nearest hit per pixel, then texture and Lambert shading per surface."""
        scene, t = self.scene, self.times[index]
        camera_to_world = self.camera_to_world[index]
        origin = camera_to_world[:3, 3]
        directions = self._rays @ camera_to_world[:3, :3].T
        box_poses = [box.motion.pose(t) for box in scene.boxes]
        sphere_poses = [sphere.motion.pose(t) for sphere in scene.spheres]

        depth = _hit_ground(origin, directions, scene.ground_radius)
        surface = np.where(np.isfinite(depth), 1, 0).astype(np.int32)
        candidates = [
            _hit_box(origin, directions, *pose, box.half_size)
            for box, pose in zip(scene.boxes, box_poses, strict=True)
        ]
        candidates += [
            _hit_sphere(origin, directions, centre, sphere.radius)
            for sphere, (_, centre) in zip(scene.spheres, sphere_poses, strict=True)
        ]
        for surface_id, distance in enumerate(candidates, start=2):
            nearer = distance < depth
            depth = np.where(nearer, distance, depth)
            surface[nearer] = surface_id

        color = np.empty((len(directions), 3), dtype=np.float32)
        sky = surface == 0
        elevation = np.clip(directions[sky, 2] / np.linalg.norm(directions[sky], axis=1), 0.0, 1.0)[:, None]
        color[sky] = scene.sky_horizon + (scene.sky_zenith - scene.sky_horizon) * np.sqrt(elevation)
        textures = (
            [scene.ground]
            + [box.texture for box in scene.boxes]
            + [sphere.texture for sphere in scene.spheres]
        )
        poses = [(np.eye(3), np.zeros(3))] + box_poses + sphere_poses
        for surface_id in np.unique(surface[~sky]):
            pixels = np.flatnonzero(surface == surface_id)
            rotation, centre = poses[surface_id - 1]
            local = (origin + depth[pixels, None] * directions[pixels] - centre) @ rotation
            local_normal = self._local_normals(surface_id, local)
            footprint = depth[pixels] / self.intrinsics.fx
            albedo = textures[surface_id - 1].evaluate(local, local_normal, footprint)
            light = AMBIENT + (1 - AMBIENT) * np.clip((local_normal @ rotation.T) @ scene.sun, 0.0, 1.0)
            color[pixels] = albedo * light[:, None].astype(np.float32)

        height, width = self.config.height, self.config.width
        depth = np.where(sky, 0.0, depth).astype(np.float32).reshape(height, width)
        color = np.round(np.clip(color, 0.0, 1.0) * 255).astype(np.uint8).reshape(height, width, 3)
        return FrameRender(depth, color, surface.reshape(height, width))

    def _local_normals(self, surface_id: int, local: np.ndarray) -> np.ndarray:
        """Unit outward normals [N, 3] in a surface's local frame at local hit points [N, 3]."""
        boxes = self.scene.boxes
        if surface_id == 1:
            return np.broadcast_to(np.array([0.0, 0.0, 1.0]), local.shape)
        if surface_id - 2 < len(boxes):
            scaled = local / boxes[surface_id - 2].half_size
            face = np.abs(scaled).argmax(axis=1)
            normals = np.zeros_like(local)
            normals[np.arange(len(local)), face] = np.sign(scaled[np.arange(len(local)), face])
            return normals
        return local / np.linalg.norm(local, axis=1, keepdims=True)


def _hit_ground(origin: np.ndarray, directions: np.ndarray, radius: float) -> np.ndarray:
    """Ray parameters [N] of hits on the ground disc z = 0 of `radius` around the origin; inf on a miss."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / directions[:, 2]
    hit_xy = origin[:2] + t[:, None] * directions[:, :2]
    hit = (t > 0) & (np.einsum("ij,ij->i", hit_xy, hit_xy) < radius * radius)
    return np.where(hit, t, np.inf)


def _hit_box(
    origin: np.ndarray,
    directions: np.ndarray,
    rotation: np.ndarray,
    centre: np.ndarray,
    half_size: np.ndarray,
) -> np.ndarray:
    """Ray parameters [N] of the entry points into an oriented box (slab test in its frame); inf on a miss."""
    local_origin = (origin - centre) @ rotation
    local_directions = directions @ rotation
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / local_directions
        t_low = (-half_size - local_origin) * inverse
        t_high = (half_size - local_origin) * inverse
    near = np.minimum(t_low, t_high).max(axis=1)
    far = np.maximum(t_low, t_high).min(axis=1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def _hit_sphere(origin: np.ndarray, directions: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Ray parameters [N] of the first hits on a sphere seen from outside; inf on a miss.

    Uses t = c / (-b + sqrt(b^2 - a c)), which keeps full precision for small, distant spheres.
    """
    offset = origin - centre
    a = np.einsum("ij,ij->i", directions, directions)
    b = directions @ offset
    c = offset @ offset - radius * radius
    discriminant = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = c / (-b + np.sqrt(discriminant))
    return np.where((discriminant >= 0) & (b < 0) & (t > 0), t, np.inf)


def render_scene(
    config: SceneConfig, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None
) -> Reconstruction:
    """The exact ground truth of a synthetic clip; color holds the rendered (not yet encoded) frames."""
    reporter = Reporter(progress, cancel)
    started = time.perf_counter()
    renderer = Renderer(config)
    shape = (config.frames, config.height, config.width)
    depth = np.empty(shape, dtype=np.float32)
    color = np.empty((*shape, 3), dtype=np.uint8)
    for index in range(config.frames):
        reporter.check_cancel()
        frame = renderer.render(index)
        depth[index], color[index] = frame.depth, frame.color
        reporter.report("render", index + 1, config.frames)
    return Reconstruction(
        camera_to_world=renderer.camera_to_world,
        intrinsics=renderer.intrinsics,
        depth=depth,
        confidence=np.ones(shape, dtype=np.float32),
        color=color,
        fps=config.fps,
        source_frames=np.arange(config.frames),
        settings={"synthetic": {**asdict(config), **renderer.scene.summary()}},
        timings={"render": round(time.perf_counter() - started, 3)},
    )


def write_synthetic(
    folder: str | Path,
    config: SceneConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """Render a clip into a result folder with its video: folder/video.mp4 and the ground truth.

    The stored colours are the ones a decoder reads back from video.mp4 (what the engine sees),
    not the rendered ones; H.264 is lossy, so they differ by a few levels (recorded in settings).
    """
    folder = Path(folder)
    reconstruction = render_scene(config, progress, cancel)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.video.", dir=folder.parent))
    except OSError as error:
        raise Geo4DError(
            f"Cannot write to {folder.parent}: {error.strerror}. Choose a writable folder."
        ) from error
    try:
        started = time.perf_counter()
        video = write_video(staging / VIDEO_NAME, reconstruction.color, config.fps)
        decoded = read_frames(video).frames
        difference = np.abs(decoded.astype(np.int16) - reconstruction.color)
        reconstruction.color = decoded
        reconstruction.source_video = VIDEO_NAME
        reconstruction.settings["synthetic"]["color"] = {
            "source": f"decoded from {VIDEO_NAME} (H.264, lossy)",
            "mean_abs_difference_to_render": round(float(difference.mean()), 4),
            "max_abs_difference_to_render": int(difference.max()),
        }
        reconstruction.timings["encode"] = round(time.perf_counter() - started, 3)
        reconstruction.save(folder)
        os.replace(video, folder / VIDEO_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "Wrote %d synthetic frames of %dx%d (seed %d) to %s.",
        config.frames,
        config.width,
        config.height,
        config.seed,
        folder,
    )
    return folder

"""Synthetic dynamic scenes with exact ground truth: a vectorised ray caster and the result writer.

One ray per pixel centre (core.camera's convention) is cast through the procedural scene of
core.synthetic.scene, so depth, cameras and intrinsics are exact by construction: unprojecting a
pixel's depth gives the very surface point whose colour the pixel shows. Moving objects are posed
at each frame's time, so each frame's depth is that frame's geometry.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..camera import pixel_centers
from ..errors import SettingError
from ..limits import MAX_SEED, check_choice, check_integer, check_number
from ..output_folder import RESULT_LAYOUT, check_output_folder, write_folder
from ..progress import CancelCheck, ProgressCallback, Reporter
from ..result import Intrinsics, Reconstruction
from ..video import read_frames
from ..video_writer import write_video
from .handheld import handheld_path
from .motion import MAX_EXTRA_MOVERS, extra_movers, true_motion
from .scene import build_scene

logger = logging.getLogger(__name__)

VIDEO_NAME = "video.mp4"
# The comment tag of every video `synth` writes: the embedded tiny model knows only these scenes.
SYNTHETIC_VIDEO_COMMENT = "geo4d synthetic scene"
AMBIENT = 0.35
# Shadow rays start this far (metres) off the surface so that they do not hit it again.
SHADOW_OFFSET = 1e-4
# What a clip may ask for, checked before rendering: a frame's ray casting takes about 200 bytes per pixel
# (4096x4096: about 3.4 GB), and the whole clip about 20 bytes per pixel per frame while it is written.
MAX_SYNTHETIC_SIDE = 4096
MAX_SYNTHETIC_PIXELS = 1 << 28
MOTIONS = ("orbit", "handheld")


@dataclass(frozen=True)
class SceneConfig:
    """What to render: clip length, image size (pixels), scene seed, frame rate and camera motion
    ("orbit": a smooth orbit; "handheld": a fast walk with pans and shake, core.synthetic.handheld), and
    `movers` extra large moving spheres (core.synthetic.motion) for scenes where much of the image moves."""

    frames: int = 48
    width: int = 512
    height: int = 320
    seed: int = 0
    fps: float = 24.0
    motion: str = "orbit"
    movers: int = 0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_integer(owner, "frames", self.frames, 1, 100_000)
        check_integer(owner, "width", self.width, 8, MAX_SYNTHETIC_SIDE)
        check_integer(owner, "height", self.height, 8, MAX_SYNTHETIC_SIDE)
        check_integer(owner, "seed", self.seed, 0, MAX_SEED)
        check_number(owner, "fps", self.fps, 0.0, 240.0, "a frame rate in (0, 240]", include_low=False)
        pixels = self.frames * self.width * self.height
        if pixels > MAX_SYNTHETIC_PIXELS:
            raise SettingError(
                owner,
                "frames",
                self.frames,
                f"at most {MAX_SYNTHETIC_PIXELS // (self.width * self.height)} at {self.width}x{self.height} "
                f"(a clip holds at most {MAX_SYNTHETIC_PIXELS:,} pixels in memory; use fewer frames or a smaller size)",
            )
        check_choice(owner, "motion", self.motion, MOTIONS)
        check_integer(owner, "movers", self.movers, 0, MAX_EXTRA_MOVERS)


@dataclass
class FrameRender:
    """One rendered frame. depth [H, W] float32 camera z (0 on sky); color [H, W, 3] uint8 RGB;
    surface [H, W] int32: which surface each pixel shows (ids as in core.synthetic.scene.Scene)."""

    depth: np.ndarray
    color: np.ndarray
    surface: np.ndarray


class Renderer:
    """Casts one ray per pixel centre through the scene of a config, one frame at a time."""

    def __init__(self, config: SceneConfig) -> None:
        self.config = config
        scene = build_scene(config.seed)
        self.scene = replace(scene, spheres=scene.spheres + extra_movers(config.seed, config.movers))
        focal = max(config.width, config.height) / 2 / math.tan(self.scene.field_of_view / 2)
        self.intrinsics = Intrinsics(focal, focal, config.width / 2, config.height / 2)
        self.times = np.arange(config.frames) / config.fps
        path = (
            self.scene.camera if config.motion == "orbit" else handheld_path(config.seed, self.scene.camera)
        )
        self.camera_to_world = path.camera_to_world(self.times)
        u, v = pixel_centers(config.height, config.width, dtype=np.float64)
        k = self.intrinsics
        # Camera-frame ray directions [3, N] with z = 1, so a hit's ray parameter is its depth.
        self._rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)]).reshape(3, -1)

    def render(self, index: int) -> FrameRender:
        """Ray-cast frame `index`: nearest hit per pixel, then texture and Lambert shading with sun shadows."""
        scene, t = self.scene, self.times[index]
        camera_to_world = self.camera_to_world[index]
        origin = camera_to_world[:3, 3:4]
        directions = camera_to_world[:3, :3] @ self._rays
        # (rotation local -> world, centre) per surface id; sky and ground use the world frame.
        poses = [(np.eye(3), np.zeros(3))] * 2
        poses += [shape.motion.pose(t) for shape in (*scene.boxes, *scene.spheres)]
        depth, surface = self._nearest_hits(origin, directions, poses)

        color = np.empty((directions.shape[1], 3), dtype=np.float32)
        sky = surface == 0
        elevation = np.clip(directions[2, sky] / np.linalg.norm(directions[:, sky], axis=0), 0.0, 1.0)[
            :, None
        ]
        color[sky] = scene.sky_horizon + (scene.sky_zenith - scene.sky_horizon) * np.sqrt(elevation)
        textures = [
            scene.ground,
            *(box.texture for box in scene.boxes),
            *(sphere.texture for sphere in scene.spheres),
        ]
        for surface_id in np.flatnonzero(np.bincount(surface, minlength=2)[1:]) + 1:
            pixels = np.flatnonzero(surface == surface_id)
            rotation, centre = poses[surface_id]
            world = origin + depth[pixels] * directions[:, pixels]
            local = rotation.T @ (world - centre[:, None])
            local_normal = self._local_normals(surface_id, local)
            normal = rotation @ local_normal
            footprint = depth[pixels] / self.intrinsics.fx
            albedo = textures[surface_id - 1].evaluate(local.T, local_normal.T, footprint)
            sunlit = np.clip(scene.sun @ normal, 0.0, 1.0)
            lit = sunlit > 0
            shadow_origins = world[:, lit] + SHADOW_OFFSET * normal[:, lit]
            shadow_directions = np.broadcast_to(scene.sun[:, None], shadow_origins.shape)
            sunlit[lit] *= np.isinf(
                self._nearest_hits(shadow_origins, shadow_directions, poses, ground=False)[0]
            )
            color[pixels] = albedo * (AMBIENT + (1 - AMBIENT) * sunlit)[:, None].astype(np.float32)

        height, width = self.config.height, self.config.width
        depth = np.where(sky, 0.0, depth).astype(np.float32).reshape(height, width)
        color = np.round(np.clip(color, 0.0, 1.0) * 255).astype(np.uint8).reshape(height, width, 3)
        return FrameRender(depth, color, surface.reshape(height, width))

    def _nearest_hits(
        self, origins: np.ndarray, directions: np.ndarray, poses: list, ground: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest ray parameter [N] (inf on no hit) and surface id [N] int32 (0 = none) of rays
        origins [3, 1 or N] + t directions [3, N] in the world, objects posed by `poses` (by surface id)."""
        scene = self.scene
        if ground:
            depth = _hit_ground(origins, directions, scene.ground_radius)
        else:
            depth = np.full(directions.shape[1], np.inf)
        surface = np.where(np.isfinite(depth), 1, 0).astype(np.int32)
        for offset, box in enumerate(scene.boxes):
            distance = _hit_box(origins, directions, *poses[2 + offset], box.half_size)
            nearer = distance < depth
            depth = np.where(nearer, distance, depth)
            surface[nearer] = 2 + offset
        for offset, sphere in enumerate(scene.spheres, start=2 + len(scene.boxes)):
            distance = _hit_sphere(origins, directions, poses[offset][1], sphere.radius)
            nearer = distance < depth
            depth = np.where(nearer, distance, depth)
            surface[nearer] = offset
        return depth, surface

    def _local_normals(self, surface_id: int, local: np.ndarray) -> np.ndarray:
        """Unit outward normals [3, N] in a surface's local frame at local hit points [3, N]."""
        boxes = self.scene.boxes
        if surface_id == 1:
            return np.repeat(np.array([[0.0], [0.0], [1.0]]), local.shape[1], axis=1)
        if surface_id - 2 < len(boxes):
            scaled = local / boxes[surface_id - 2].half_size[:, None]
            face = np.abs(scaled).argmax(axis=0)
            columns = np.arange(local.shape[1])
            normals = np.zeros_like(local)
            normals[face, columns] = np.sign(scaled[face, columns])
            return normals
        return local / np.linalg.norm(local, axis=0)


def _hit_ground(origins: np.ndarray, directions: np.ndarray, radius: float) -> np.ndarray:
    """Ray parameters [N] of hits on the ground disc z = 0 of `radius` around the world origin; inf on a miss.

    origins [3, 1 or N], directions [3, N]: the component-major layout of all ray functions here.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origins[2] / directions[2]
    x = origins[0] + t * directions[0]
    y = origins[1] + t * directions[1]
    return np.where((t > 0) & (x * x + y * y < radius * radius), t, np.inf)


def _hit_box(
    origins: np.ndarray,
    directions: np.ndarray,
    rotation: np.ndarray,
    centre: np.ndarray,
    half_size: np.ndarray,
) -> np.ndarray:
    """Ray parameters [N] of the entry points into an oriented box (slab test in its frame); inf on a miss."""
    local_origins = rotation.T @ (origins - centre[:, None])
    local_directions = rotation.T @ directions
    half = half_size[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / local_directions
        t_low = (-half - local_origins) * inverse
        t_high = (half - local_origins) * inverse
    near = np.minimum(t_low, t_high).max(axis=0)
    far = np.maximum(t_low, t_high).min(axis=0)
    return np.where((near <= far) & (near > 0), near, np.inf)


def _hit_sphere(origins: np.ndarray, directions: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Ray parameters [N] of the first hits on a sphere seen from outside; inf on a miss.

    Uses t = c / (-b + sqrt(b^2 - a c)), which keeps full precision for small, distant spheres.
    """
    offset = origins - centre[:, None]
    a = (directions * directions).sum(axis=0)
    b = (directions * offset).sum(axis=0)
    c = (offset * offset).sum(axis=0) - radius * radius
    discriminant = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = c / (-b + np.sqrt(discriminant))
    return np.where((discriminant >= 0) & (b < 0) & (t > 0), t, np.inf)


def render_scene(
    config: SceneConfig, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None
) -> Reconstruction:
    """The exact ground truth of a synthetic clip; color holds the rendered (not yet encoded) frames and
    motion the true motion masks (score 1 on the pixels of moving shapes)."""
    reporter = Reporter(progress, cancel)
    started = time.perf_counter()
    renderer = Renderer(config)
    shape = (config.frames, config.height, config.width)
    depth = np.empty(shape, dtype=np.float32)
    color = np.empty((*shape, 3), dtype=np.uint8)
    surfaces = np.empty(shape, dtype=np.int32)
    for index in range(config.frames):
        reporter.check_cancel()
        frame = renderer.render(index)
        depth[index], color[index], surfaces[index] = frame.depth, frame.color, frame.surface
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
        motion=true_motion(renderer.scene, surfaces, renderer.camera_to_world, depth),
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
    folder = check_output_folder(folder, RESULT_LAYOUT)
    reconstruction = render_scene(config, progress, cancel)

    def write(staging: Path) -> None:
        started = time.perf_counter()
        video = write_video(
            staging / VIDEO_NAME, reconstruction.color, config.fps, comment=SYNTHETIC_VIDEO_COMMENT
        )
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
        reconstruction.write_files(staging, 0.0, None)

    write_folder(folder, RESULT_LAYOUT, write)
    logger.info(
        "Wrote %d synthetic frames of %dx%d (seed %d) to %s.",
        config.frames,
        config.width,
        config.height,
        config.seed,
        folder,
    )
    return folder

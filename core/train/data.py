"""Training data: synthetic scenes rendered at the network size, and their Geo4D modality targets per window.

A scene is rendered twice with the same seed: at `supersampling` x the network size for the colours
(box-filtered down, as a resized video looks) and at the network size for the depth, so the depth is
exact at the network's pixel centres. Targets follow core.modalities exactly (what the aligner expects).
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..camera import invert_rigid, unproject_depth
from ..modalities import POINT_INVALID, encode_disparity, encode_point_map, encode_rays
from ..output_folder import write_file
from ..progress import Reporter
from ..result import write_npz
from ..synthetic.render import SceneConfig, render_scene
from .config import TrainConfig

logger = logging.getLogger(__name__)

WINDOW = 16
# Sign of each channel of the modality maps under a horizontal image flip (mirror x of the camera frame):
# point map and ray direction negate x; a moment o x d of mirrored o, d is (m_x, -m_y, -m_z).
FLIP_SIGNS = torch.tensor([[-1.0, 1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


@dataclass
class SceneSet:
    """Rendered training scenes, S scenes of F frames at H x W.

    rgb [S, F, H, W, 3] uint8; depth [S, F, H, W] float32 camera z (0 on sky); camera_to_world
    [S, F, 4, 4] float64 (OpenCV); focal [S] float64 pixels (principal point at the centre); seeds [S].
    """

    rgb: np.ndarray
    depth: np.ndarray
    camera_to_world: np.ndarray
    focal: np.ndarray
    seeds: np.ndarray

    def save(self, path: Path) -> None:
        """Write the cache whole or not at all (its folder is the training output, checked to be ours)."""
        write_file(path, lambda partial: write_npz(partial, **self.__dict__), None, "training data cache")

    @classmethod
    def load(cls, path: Path) -> SceneSet:
        with np.load(path) as data:
            return cls(**{name: data[name] for name in ("rgb", "depth", "camera_to_world", "focal", "seeds")})


def box_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """[..., H*f, W*f, C] uint8 -> [..., H, W, C] uint8, the rounded mean of each f x f block."""
    if factor == 1:
        return image
    *lead, height, width, channels = image.shape
    blocks = image.reshape(*lead, height // factor, factor, width // factor, factor, channels)
    return np.round(blocks.astype(np.float32).mean(axis=(-4, -2))).astype(np.uint8)


def _render_training_scene(job: tuple[int, int, int, int, int]):
    """(frames, width, height, seed, supersampling) -> (box-filtered colours [F, H, W, 3] uint8, the scene
    rendered at the network size: exact depth, cameras, focal)."""
    frames, width, height, seed, factor = job
    exact = render_scene(SceneConfig(frames=frames, width=width, height=height, seed=seed))
    fine = exact
    if factor > 1:
        fine = render_scene(
            SceneConfig(frames=frames, width=width * factor, height=height * factor, seed=seed)
        )
    return box_downsample(fine.color, factor), exact


@contextmanager
def _scene_renderer(workers: int):
    """`map(function, jobs)` in order: in this process for 1 worker, else in a pool of fresh (spawned)
    processes (a forked copy of a process that has run torch can hang in its thread pool)."""
    if workers == 1:
        yield map
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.map


def render_scenes(
    config: TrainConfig, size: tuple[int, int], cache: Path | None = None, reporter: Reporter | None = None
) -> SceneSet:
    """The training scenes of `config` at `size` (W, H), rendered by config.render_workers processes; read
    from `cache` when it holds the same seeds."""
    width, height = size
    if cache is not None and cache.is_file():
        scenes = SceneSet.load(cache)
        same = scenes.seeds.tolist() == config.seeds and scenes.rgb.shape[1:4] == (
            config.frames_per_scene,
            height,
            width,
        )
        if same:
            logger.info("Training scenes read from %s.", cache)
            return scenes
    rgb, depth, camera_to_world, focal = [], [], [], []
    jobs = [(config.frames_per_scene, width, height, seed, config.supersampling) for seed in config.seeds]
    with _scene_renderer(config.render_workers) as render:
        for index, (colours, exact) in enumerate(render(_render_training_scene, jobs)):
            rgb.append(colours)
            depth.append(exact.depth)
            camera_to_world.append(exact.camera_to_world)
            focal.append(exact.intrinsics.fx)
            if reporter is not None:
                reporter.report("render", index + 1, config.scenes)
    scenes = SceneSet(
        np.stack(rgb),
        np.stack(depth).astype(np.float32),
        np.stack(camera_to_world),
        np.array(focal),
        np.array(config.seeds),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        scenes.save(cache)
    return scenes


def window_starts(frames: int, step: int) -> list[int]:
    """First frames of the 16-frame training windows of a scene of `frames` frames."""
    return list(range(0, frames - WINDOW + 1, step))


def modality_targets(depth: np.ndarray, camera_to_world: np.ndarray, focal: float) -> torch.Tensor:
    """Encoded Geo4D modalities of one window: [4, L, 3, H, W] float32.

    Order = the UNet's output order: point map, ray direction, ray moment, disparity (3 equal
    channels), each as core.modalities encodes it in the window's first-camera frame.
    depth [L, H, W] camera z (0 = sky); camera_to_world [L, 4, 4]; focal in pixels, centred principal point.
    """
    length, height, width = depth.shape
    to_first = torch.from_numpy(invert_rigid(camera_to_world[0]) @ camera_to_world)
    local = torch.from_numpy(unproject_depth(depth.astype(np.float64), focal, focal, width / 2, height / 2))
    points = torch.einsum("lij,lhwj->lhwi", to_first[:, :3, :3], local) + to_first[:, None, None, :3, 3]
    valid = torch.from_numpy(depth > 0)
    point_map, norm = encode_point_map(points, valid)
    disparity, _ = encode_disparity(torch.from_numpy(depth.astype(np.float64)), valid)
    direction, moment = encode_rays(to_first, focal, height, width, norm)
    maps = torch.stack([point_map, direction, moment, disparity])  # [4, L, H, W, 3]
    return maps.permute(0, 1, 4, 2, 3).float().contiguous()


def flip_targets(targets: torch.Tensor) -> torch.Tensor:
    """The targets [4, L, 3, H, W] of the horizontally flipped window (the mirrored scene).

    Invalid point-map pixels keep their marker (1.05 in every channel); disparity has no signed channel.
    """
    flipped = targets.flip(-1)
    signed = flipped * FLIP_SIGNS.to(targets)[:, None, :, None, None]
    invalid = (flipped[0] == POINT_INVALID).all(dim=1, keepdim=True)
    signed[0] = torch.where(invalid, flipped[0], signed[0])
    return signed


def rgb_images(rgb: np.ndarray, flip: bool = False) -> torch.Tensor:
    """[N, H, W, 3] uint8 -> [N, 3, H, W] float32 in [-1, 1] (the network's input range), optionally flipped."""
    images = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return images.flip(-1) if flip else images

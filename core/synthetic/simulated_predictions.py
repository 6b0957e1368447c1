"""Network-like per-window predictions made from a ground-truth reconstruction, for tests and benchmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..camera import invert_rigid, pixel_centers
from ..modalities import (
    DISPARITY_CLAMP,
    camera_points_to_decoded,
    encode_decoded_points,
    encode_disparity,
    percentile_normalisation,
)
from ..prediction import WindowPrediction
from ..result import Reconstruction
from ..windows import WindowPlan


@dataclass(frozen=True)
class PredictionNoise:
    """How far simulated predictions stray from the truth.

    point_noise: isotropic point noise, a fraction of depth. outlier_fraction: pixels replaced by
    uniform values in the encoded cube. rotation_deg, scale_spread, translation: size of the random
    per-window similarity applied to the window's decoded geometry (points and rays alike).
    disparity_noise: relative disparity noise; disparity_scale_spread, disparity_shift: the random
    per-window affine map of the encoded disparity (clamped after it, as a network output is). ray_angle_deg: angular noise of ray directions.
    ray_focal_spread: each window's rays are made with a focal off by a factor uniform in
    1 +- ray_focal_spread (a network's ray maps need not agree with its point maps on the focal).
    garbage_windows: windows whose maps are replaced by noise.
    """

    point_noise: float = 0.01
    outlier_fraction: float = 0.05
    rotation_deg: float = 10.0
    scale_spread: float = 0.2
    translation: float = 0.1
    disparity_noise: float = 0.01
    disparity_scale_spread: float = 0.2
    disparity_shift: float = 0.1
    ray_angle_deg: float = 0.2
    ray_focal_spread: float = 0.0
    garbage_windows: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "point_noise",
            "rotation_deg",
            "scale_spread",
            "translation",
            "disparity_noise",
            "ray_angle_deg",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"PredictionNoise.{name} = {getattr(self, name)} must be >= 0.")
        if not 0 <= self.outlier_fraction < 1:
            raise ValueError(f"PredictionNoise.outlier_fraction = {self.outlier_fraction} must be in [0, 1).")
        spreads = ("scale_spread", "disparity_scale_spread", "ray_focal_spread")
        for name in spreads:
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"PredictionNoise.{name} = {getattr(self, name)} must be in [0, 1).")


NOISE_FREE = PredictionNoise(0, 0, 0, 0, 0, 0, 0, 0, 0)


def random_rotation(generator: torch.Generator, max_degrees: float) -> torch.Tensor:
    """[3, 3] float64 rotation about a random axis by up to max_degrees."""
    axis = torch.randn(3, generator=generator, dtype=torch.float64)
    axis = axis / axis.norm()
    angle = math.radians(max_degrees) * (
        2 * torch.rand(1, generator=generator, dtype=torch.float64).item() - 1
    )
    cross = torch.tensor(
        [[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64
    )
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def _uniform(generator: torch.Generator, spread: float) -> float:
    return spread * (2 * torch.rand(1, generator=generator, dtype=torch.float64).item() - 1)


def _perturb_directions(directions: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(directions.shape, generator=generator, dtype=directions.dtype) * math.radians(degrees)
    noisy = directions + noise
    return noisy / noisy.norm(dim=-1, keepdim=True)


def _garbage(
    length: int, height: int, width: int, frames: torch.Tensor, generator: torch.Generator
) -> WindowPrediction:
    shape = (length, height, width)
    direction = torch.randn(*shape, 3, generator=generator)
    return WindowPrediction(
        frames=frames,
        point_map=2 * torch.rand(*shape, 3, generator=generator) - 1,
        point_confidence=torch.ones(shape),
        disparity=2 * torch.rand(*shape, generator=generator) - 1,
        ray_direction=direction / direction.norm(dim=-1, keepdim=True),
        ray_moment=torch.randn(*shape, 3, generator=generator),
    )


def simulate_window_predictions(
    truth: Reconstruction, plan: WindowPlan, noise: PredictionNoise = PredictionNoise(), seed: int = 0
) -> list[WindowPrediction]:
    """Per-window predictions of the truth as Geo4D's network would output them, corrupted by `noise`.

    Each window: points in its first-camera frame, percentile-normalised (core.modalities), moved by a
    random similarity in the decoded frame (rays with it), then noised; float32 on the CPU.
    """
    generator = torch.Generator().manual_seed(seed)
    depth_all = torch.from_numpy(np.nan_to_num(truth.depth)).double()
    valid_all = depth_all > 0
    k = truth.intrinsics
    u, v = pixel_centers(truth.height, truth.width, dtype=np.float64)
    camera_xy = torch.from_numpy(np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy], axis=-1))
    predictions = []
    for window, frame_list in enumerate(plan.frame_indices):
        frames = torch.from_numpy(frame_list)
        length = len(frame_list)
        if window in noise.garbage_windows:
            predictions.append(_garbage(length, truth.height, truth.width, frames, generator))
            continue
        to_first = torch.from_numpy(
            invert_rigid(truth.camera_to_world[frame_list[0]]) @ truth.camera_to_world[frame_list]
        )
        depth, valid = depth_all[frames], valid_all[frames]
        local = torch.cat([camera_xy[None] * depth[..., None], depth[..., None]], dim=-1)
        points = torch.einsum("lij,lhwj->lhwi", to_first[:, :3, :3], local) + to_first[:, None, None, :3, 3]
        norm = percentile_normalisation(points[..., 2], valid)
        decoded = camera_points_to_decoded(points, norm)
        centres = camera_points_to_decoded(to_first[:, :3, 3], norm)
        rotation = random_rotation(generator, noise.rotation_deg)
        scale = 1 + _uniform(generator, noise.scale_spread)
        shift = torch.tensor([_uniform(generator, noise.translation) for _ in range(3)], dtype=torch.float64)
        decoded = scale * decoded @ rotation.T + shift
        centres = scale * centres @ rotation.T + shift
        point_sigma = noise.point_noise * depth[..., None] / norm.scale
        decoded = decoded + point_sigma * torch.randn(decoded.shape, generator=generator, dtype=torch.float64)
        encoded = encode_decoded_points(decoded, valid)
        outliers = torch.rand(valid.shape, generator=generator) < noise.outlier_fraction
        uniform = 2 * torch.rand(*valid.shape, 3, generator=generator, dtype=torch.float64) - 1
        encoded = torch.where(outliers[..., None], uniform, encoded)

        disparity_noise = 1 + noise.disparity_noise * torch.randn(
            depth.shape, generator=generator, dtype=torch.float64
        )
        disparity = encode_disparity(depth / disparity_noise, valid, clamp=False)[0][..., 0]
        affine_scale = 1 + _uniform(generator, noise.disparity_scale_spread)
        affine_shift = _uniform(generator, noise.disparity_shift)
        disparity = torch.where(valid, affine_scale * disparity + affine_shift, disparity)
        disparity = disparity.clamp(-DISPARITY_CLAMP, DISPARITY_CLAMP)

        # Drawn only when asked for, so that the other draws of a seed stay as they were.
        ray_focal = 1 + _uniform(generator, noise.ray_focal_spread) if noise.ray_focal_spread else 1.0
        ray_xy = camera_xy / ray_focal
        local_dirs = torch.cat([ray_xy, torch.ones_like(ray_xy[..., :1])], dim=-1)
        directions = torch.einsum("ij,ljk,hwk->lhwi", rotation, to_first[:, :3, :3], local_dirs)
        directions = directions / directions.norm(dim=-1, keepdim=True)
        directions = _perturb_directions(directions, noise.ray_angle_deg, generator)
        moment = torch.cross(centres[:, None, None, :].expand_as(directions), directions, dim=-1)
        confidence = 1 + 0.2 * torch.rand(valid.shape, generator=generator, dtype=torch.float64)
        predictions.append(
            WindowPrediction(
                frames=frames,
                point_map=encoded.float(),
                point_confidence=confidence.float(),
                disparity=disparity.float(),
                ray_direction=directions.float(),
                ray_moment=moment.float(),
            )
        )
    return predictions

"""Training data: scenes rendered and cached, modality targets that decode to the truth, exact mirroring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from geo4d.core.camera import invert_rigid, unproject_depth
from geo4d.core.modalities import decode_disparity, decode_point_map, ray_trajectory_from_maps
from geo4d.core.train.config import CACHE_NAME, TRAIN_SEED_START, TrainConfig
from geo4d.core.train.data import (
    SceneSet,
    box_downsample,
    flip_targets,
    modality_targets,
    render_scenes,
    window_starts,
)

SIZE = (64, 64)


@pytest.fixture(scope="module")
def scenes() -> SceneSet:
    return render_scenes(TrainConfig.toy(), SIZE)


def test_scenes_use_the_training_seeds_and_are_cached(scenes: SceneSet, tmp_path) -> None:
    config = TrainConfig.toy()
    assert scenes.seeds.tolist() == [TRAIN_SEED_START, TRAIN_SEED_START + 1]
    assert scenes.rgb.shape == (2, 16, 64, 64, 3) and scenes.rgb.dtype == np.uint8
    assert scenes.depth.shape == (2, 16, 64, 64) and (scenes.depth > 0).mean() > 0.5
    cache = tmp_path / CACHE_NAME
    first = render_scenes(config, SIZE, cache)
    cache.write_bytes(cache.read_bytes())  # same content: the second call must read it, not render
    stamp = cache.stat().st_mtime_ns
    second = render_scenes(config, SIZE, cache)
    assert cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.rgb, second.rgb)
    third = render_scenes(replace(config, scenes=1), SIZE, cache)  # other seeds: rendered again
    assert third.seeds.tolist() == [TRAIN_SEED_START]


def test_supersampled_colours_are_box_filtered() -> None:
    image = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    small = box_downsample(image, 2)
    assert small.shape == (2, 2, 3, 3)
    assert small[1, 1, 2, 0] == np.round(image[1, 2:4, 4:6, 0].mean())
    assert box_downsample(image, 1) is image


def test_targets_decode_to_the_window_geometry(scenes: SceneSet) -> None:
    depth, cameras, focal = scenes.depth[0], scenes.camera_to_world[0], float(scenes.focal[0])
    targets = modality_targets(depth, cameras, focal)
    assert targets.shape == (4, 16, 3, 64, 64) and targets.dtype == torch.float32
    point_map, direction, moment, disparity = targets.permute(0, 1, 3, 4, 2)

    decoded, valid = decode_point_map(point_map)
    np.testing.assert_array_equal(valid.numpy(), depth > 0)
    to_first = invert_rigid(cameras[0]) @ cameras
    truth = np.einsum("lij,lhwj->lhwi", to_first[:, :3, :3], unproject_depth(depth, focal, focal, 32, 32))
    truth = truth + to_first[:, None, None, :3, 3]
    # Decoded points are the truth up to one scale and a z shift: fit them on the valid pixels.
    ratio = np.median(decoded[..., 0][valid].numpy() / np.where(valid, truth[..., 0], 1)[valid.numpy()])
    assert np.allclose(decoded[..., 0][valid].numpy(), ratio * truth[..., 0][valid.numpy()], atol=2e-3)

    inverse, usable = decode_disparity(disparity[..., 0])
    fit = np.polyfit(1 / depth[usable.numpy()], inverse[usable].numpy(), 1)
    assert abs(np.polyval(fit, 1 / depth[usable.numpy()]) - inverse[usable].numpy()).max() < 2e-3

    pixels = torch.stack(torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="xy"), -1)
    trajectory = ray_trajectory_from_maps(
        direction.reshape(16, -1, 3).double(),
        moment.reshape(16, -1, 3).double(),
        pixels.reshape(-1, 2).double(),
        torch.ones(16, 64 * 64, dtype=torch.float64),
        (32.0, 32.0),
    )
    np.testing.assert_allclose(trajectory.focals.numpy(), focal, rtol=1e-3)
    np.testing.assert_allclose(trajectory.rotations.numpy(), to_first[:, :3, :3], atol=1e-3)


def test_flipped_targets_are_the_mirrored_scene(scenes: SceneSet) -> None:
    depth, cameras, focal = scenes.depth[1, :16], scenes.camera_to_world[1, :16], float(scenes.focal[1])
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    mirrored = modality_targets(depth[..., ::-1].copy(), mirror @ cameras @ mirror, focal)
    torch.testing.assert_close(
        flip_targets(modality_targets(depth, cameras, focal)), mirrored, atol=1e-5, rtol=0
    )


def test_window_starts_cover_the_scene() -> None:
    assert window_starts(24, 8) == [0, 8]
    assert window_starts(16, 4) == [0]
    assert window_starts(32, 4) == [0, 4, 8, 12, 16]

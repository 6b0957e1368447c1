"""The `small` training preset: a wider network at 256x128 for one GPU, its scenes rendered by a process pool."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network
from geo4d.core.train.config import TrainConfig
from geo4d.core.train.data import render_scenes


def test_small_preset_trains_a_wider_network_and_is_not_the_default():
    config = TrainConfig.small()
    assert config.network == "small" and config.render_workers == 16
    assert TrainConfig.shipped().network == "tiny" and TrainConfig().render_workers == 1
    small, tiny = NetworkConfig.preset("small"), NetworkConfig.tiny()
    assert small.input_sizes == ((256, 128),)
    assert (
        small.unet.model_channels == 2 * tiny.unet.model_channels
        and small.vae.channels == 2 * tiny.vae.channels
    )
    model = random_network(small, device="meta")  # the whole window path, shapes only
    frames = np.zeros((16, 128, 256, 3), dtype=np.uint8)
    prediction = model.predict_window(frames, 24, None, 0, steps=0, decode_batch=8)
    assert prediction.point_map.shape == (16, 128, 256, 3)
    with pytest.raises(ValueError, match="network = 'huge'"):
        TrainConfig(network="huge")
    with pytest.raises(ValueError, match="render_workers = 0"):
        TrainConfig(render_workers=0)


def test_scenes_rendered_by_a_process_pool_equal_those_rendered_here():
    config = replace(TrainConfig.toy(), supersampling=2)
    here = render_scenes(config, (64, 32))
    pooled = render_scenes(replace(config, render_workers=2), (64, 32))
    for name, value in vars(here).items():
        np.testing.assert_array_equal(getattr(pooled, name), value, err_msg=name)

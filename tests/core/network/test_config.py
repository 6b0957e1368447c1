"""Network configs: the presets hold the published hyperparameters, bad values are refused by name."""

from __future__ import annotations

import json

import pytest

from geo4d.core.network.config import (
    MODEL_SIZES,
    NetworkConfig,
    ResamplerConfig,
    TextTowerConfig,
    UNetConfig,
    VAEConfig,
    VisualTowerConfig,
)


def test_full_preset_is_the_published_model() -> None:
    config = NetworkConfig.preset("full")
    unet = config.unet
    assert (unet.in_channels, unet.out_channels, unet.model_channels) == (20, 16, 320)
    assert unet.channel_mult == (1, 2, 4, 4) and unet.num_res_blocks == 2
    assert unet.attention_resolutions == (4, 2, 1) and unet.head_channels == 64
    assert (unet.context_dim, unet.temporal_length, unet.time_embed_dim) == (1024, 16, 1280)
    assert (config.resampler.dim, config.resampler.depth, config.resampler.heads) == (1024, 4, 12)
    assert (config.text.width, config.text.layers, config.visual.width, config.visual.layers) == (
        1024,
        24,
        1280,
        32,
    )
    assert config.visual.num_tokens == 257
    assert (config.vae.channels, config.vae.downsampling, config.vae.scale_factor) == (128, 8, 0.18215)


def test_tiny_preset_keeps_the_structure() -> None:
    full, tiny = NetworkConfig.full(), NetworkConfig.preset("tiny")
    assert len(tiny.unet.channel_mult) == len(full.unet.channel_mult)
    assert tiny.unet.attention_resolutions == full.unet.attention_resolutions
    assert tiny.unet.temporal_length == full.unet.temporal_length
    assert tiny.vae.downsampling == full.vae.downsampling
    assert tiny.unet.model_channels < full.unet.model_channels


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: UNetConfig(model_channels=48), "model_channels = 48"),
        (lambda: UNetConfig(head_channels=48), "head_channels = 48"),
        (lambda: UNetConfig(attention_resolutions=(16,)), "attention_resolutions"),
        (lambda: UNetConfig(channel_mult=()), "channel_mult"),
        (lambda: UNetConfig(num_res_blocks=0), "num_res_blocks = 0"),
        (lambda: ResamplerConfig(depth=0), "depth = 0"),
        (lambda: TextTowerConfig(layers=1), "layers = 1"),
        (lambda: TextTowerConfig(heads=3), "heads = 3"),
        (lambda: VisualTowerConfig(patch_size=15), "patch_size = 15"),
        (lambda: VAEConfig(channels=100), "channels = 100"),
        (lambda: VAEConfig(norm_groups=0), "norm_groups = 0"),
        (lambda: VAEConfig(channels=36, adaptor_channels=32, norm_groups=8), "channels = 36"),
        (lambda: NetworkConfig(text=TextTowerConfig(width=768, heads=12)), "width = 768"),
        (lambda: NetworkConfig(resampler=ResamplerConfig(video_length=8)), "video_length = 8"),
        (lambda: NetworkConfig.preset("huge"), "'huge'"),
    ],
)
def test_bad_values_are_refused_by_name(build, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        build()


def test_input_sizes_follow_the_network_stride() -> None:
    assert NetworkConfig.full().input_sizes == MODEL_SIZES
    tiny = NetworkConfig.tiny()
    assert tiny.input_stride == 64
    assert all(w % 64 == 0 and h % 64 == 0 and w < 512 for w, h in tiny.input_sizes)
    with pytest.raises(ValueError, match=r"input_sizes = \(\(100, 64\),\)"):
        NetworkConfig(input_sizes=((100, 64),))
    with pytest.raises(ValueError, match="input_sizes"):
        NetworkConfig(input_sizes=())


def test_sampling_steps_travel_with_the_network() -> None:
    from geo4d.core.network.network_file import network_config_from_json, network_config_to_json

    assert NetworkConfig.full().sampling_steps == 5 and NetworkConfig.tiny().sampling_steps == 1
    stored = network_config_to_json(NetworkConfig.tiny())
    assert network_config_from_json(stored) == NetworkConfig.tiny()
    older = json.loads(stored)
    del older["sampling_steps"]  # files written before the field get the published network's 5
    assert network_config_from_json(json.dumps(older)).sampling_steps == 5
    with pytest.raises(ValueError, match="sampling_steps = 0"):
        NetworkConfig(sampling_steps=0)


def test_sampling_steps_only_travels_with_the_network() -> None:
    """tiny's weights know t = 999 alone; the published network's every timestep (older files: False)."""
    from geo4d.core.network.network_file import network_config_from_json, network_config_to_json

    assert NetworkConfig.tiny().sampling_steps_only and not NetworkConfig.full().sampling_steps_only
    older = json.loads(network_config_to_json(NetworkConfig.tiny()))
    del older["sampling_steps_only"]
    assert not network_config_from_json(json.dumps(older)).sampling_steps_only
    with pytest.raises(ValueError, match="sampling_steps_only = 1"):
        NetworkConfig(sampling_steps_only=1)

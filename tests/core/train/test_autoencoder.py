"""The tiny model's VAE training: loss falls in a few steps, exact latent standardisation, Laplacian head."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from geo4d.core.model_choice import TINY_WEIGHTS
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.network_file import load_network_file
from geo4d.core.network.vae import Geo4DVAE
from geo4d.core.train.autoencoder import (
    finetune_pointmap_decoder,
    laplace_nll,
    pointmap_vae_from,
    reconstruction_error,
    standardise_latents,
    train_vae,
    vae_batch,
    window_targets,
)
from geo4d.core.train.config import TrainConfig
from geo4d.core.train.data import SceneSet, render_scenes

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def scenes() -> SceneSet:
    return render_scenes(TrainConfig.toy(), (64, 64))


def test_a_few_vae_steps_reduce_the_reconstruction_loss(scenes: SceneSet, tmp_path) -> None:
    torch.manual_seed(0)
    vae = Geo4DVAE(NetworkConfig.tiny().vae)
    config = replace(TrainConfig.toy(), vae_steps=12, vae_batch=4, warmup_steps=2, log_every=4)
    log = tmp_path / "log.jsonl"
    history = train_vae(vae, scenes, config, CPU, log_path=log)
    assert [record["step"] for record in history] == [4, 8, 12]
    assert history[-1]["l1"] < 0.8 * history[0]["l1"]
    assert len(log.read_text().splitlines()) == 3
    assert not any(p.requires_grad for p in vae.parameters())


@pytest.mark.slow  # the toy VAE over every scene: about 50 s on two cores
def test_reconstruction_error_reports_every_modality_and_the_rgb_frames(scenes: SceneSet) -> None:
    torch.manual_seed(0)
    config = TrainConfig.toy()
    untrained = reconstruction_error(Geo4DVAE(NetworkConfig.tiny().vae), scenes, config, CPU)
    trained = reconstruction_error(
        load_network_file(TINY_WEIGHTS, "cpu", torch.float32)[1]["vae"], scenes, config, CPU
    )
    assert list(trained) == ["point_map", "ray_direction", "ray_moment", "disparity", "rgb"]
    assert all(trained[name] < untrained[name] for name in trained), (trained, untrained)


def test_vae_batches_are_whole_images_unless_a_crop_is_asked_for() -> None:
    """Whole 128x64 maps by default: a crop would hide each pixel's column, on which x depends."""
    wide = render_scenes(TrainConfig.toy(), (128, 64))
    whole, weights = vae_batch(wide, replace(TrainConfig.toy(), vae_batch=4), np.random.default_rng(0))
    assert whole.shape == (4, 3, 64, 128) and weights.shape == (4,)
    cropped, _ = vae_batch(
        wide, replace(TrainConfig.toy(), vae_batch=4, vae_crop=32), np.random.default_rng(0)
    )
    assert cropped.shape == (4, 3, 32, 32)


def test_standardised_latents_decode_the_same_and_have_unit_spread(scenes: SceneSet) -> None:
    torch.manual_seed(1)
    vae = Geo4DVAE(NetworkConfig.tiny().vae).eval()
    maps = window_targets(scenes, 0, 0, False)[:, :4].flatten(0, 1)
    with torch.no_grad():
        before = vae.decode(vae.encode(maps).mean)
        standardise_latents(vae, scenes, TrainConfig.toy(), CPU)
        latents = vae.encode(window_targets(scenes, 1, 0, True).flatten(0, 1)).mean * vae.config.scale_factor
        after = vae.decode(vae.encode(maps).mean)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    spread = latents.transpose(0, 1).flatten(1).std(dim=1)
    assert ((spread > 0.5) & (spread < 2.0)).all(), spread


def test_laplace_likelihood_is_lowest_at_the_mean_absolute_residual() -> None:
    target = torch.zeros(1, 3, 4, 4)
    decoded = torch.full((1, 3, 4, 4), 0.2)  # |r|_1 = 0.6 per pixel: the best scale is 0.6 / 3 = 0.2
    scales = torch.tensor([0.05, 0.1, 0.2, 0.4, 0.8])
    raw = torch.log(torch.expm1(scales))  # softplus(raw) = scale
    losses = [laplace_nll(decoded, target, value.expand(1, 1, 4, 4)).item() for value in raw]
    assert int(np.argmin(losses)) == 2


def test_pointmap_decoder_starts_as_the_main_decoder_and_learns_its_uncertainty(scenes: SceneSet) -> None:
    torch.manual_seed(2)
    vae = Geo4DVAE(NetworkConfig.tiny().vae).eval().requires_grad_(False)
    pointmap = pointmap_vae_from(vae)
    latents = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        decoded, raw = pointmap.decode_with_uncertainty(latents)
        torch.testing.assert_close(decoded, vae.decode(latents))
    config = replace(TrainConfig.toy(), pointmap_steps=12, pointmap_batch=4, log_every=6, pointmap_lr=1e-3)
    history = finetune_pointmap_decoder(pointmap, vae, scenes, config, CPU)
    assert history[-1]["nll"] < history[0]["nll"]
    assert raw.shape == (2, 1, 64, 64)

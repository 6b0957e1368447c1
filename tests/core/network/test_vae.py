"""Geo4D's VAE: golden outputs of the authors' VAE and uncertainty head, and LDM-name loading."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from geo4d.core.network.checkpoint import fill_modules, split_model_state, split_pointmap_vae_state
from geo4d.core.network.config import NetworkConfig, VAEConfig
from geo4d.core.network.network_file import network_config_from_json, network_config_to_json
from geo4d.core.network.vae import Geo4DVAE, ldm_vae_key_to_ours, our_vae_key_to_ldm, uncertainty_weight

# Golden set A's VAE: ch 32, ch_mult [1, 2], one ResBlock per level, adaptor at 32 channels.
GOLDEN_CONFIG = NetworkConfig(
    vae=VAEConfig(channels=32, channel_mult=(1, 2), num_res_blocks=1, adaptor_channels=32)
)
TOLERANCE = 2e-5

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def vae_golden(golden) -> dict[str, torch.Tensor]:
    return golden("vae")


def golden_weights(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The golden VAE's weights as a published file holds them (adaptors included) under `prefix`."""
    return {
        prefix + key.removeprefix("weights."): value
        for key, value in tensors.items()
        if key.startswith("weights.")
    }


@pytest.fixture(scope="module")
def main_vae(vae_golden) -> Geo4DVAE:
    """Loaded with model.ckpt's rules: `first_stage_model.` keys, both adaptors dropped by name."""
    tensors, unexpected = split_model_state(
        golden_weights(vae_golden, "first_stage_model."), GOLDEN_CONFIG, ["vae"]
    )
    assert unexpected == []
    with torch.device("meta"):
        vae = Geo4DVAE(GOLDEN_CONFIG.vae)
    fill_modules({"vae": vae}, tensors, GOLDEN_CONFIG, "golden")
    return vae


@pytest.fixture(scope="module")
def pointmap_vae(vae_golden) -> Geo4DVAE:
    """Loaded with vae.ckpt's rules: `model.` keys, encoder parts and encoder adaptor dropped by name."""
    tensors, unexpected = split_pointmap_vae_state(golden_weights(vae_golden, "model."), GOLDEN_CONFIG)
    assert unexpected == []
    with torch.device("meta"):
        vae = Geo4DVAE(GOLDEN_CONFIG.vae, encoder=False, uncertainty=True)
    fill_modules({"pointmap_vae": vae}, {"pointmap_vae": tensors}, GOLDEN_CONFIG, "golden")
    return vae


@torch.no_grad()
def test_posterior_matches_golden(main_vae, vae_golden):
    posterior = main_vae.encode(vae_golden["input.image"])
    expected = {
        "moments": posterior.parameters,
        "posterior_mean": posterior.mean,
        "posterior_logvar": posterior.logvar,
        "posterior_std": posterior.std,
    }
    for name, value in expected.items():
        torch.testing.assert_close(value, vae_golden[f"output.{name}"], rtol=0, atol=TOLERANCE, msg=name)


@torch.no_grad()
def test_decode_matches_golden(main_vae, pointmap_vae, vae_golden):
    for vae in (main_vae, pointmap_vae):
        torch.testing.assert_close(
            vae.decode(vae_golden["input.z"]), vae_golden["output.decode"], rtol=0, atol=TOLERANCE
        )


@torch.no_grad()
def test_decode_with_uncertainty_matches_golden(pointmap_vae, vae_golden):
    decoded, raw = pointmap_vae.decode_with_uncertainty(vae_golden["input.z"])
    assert raw.shape == (1, 1, 32, 48)
    torch.testing.assert_close(
        torch.cat([decoded, raw], dim=1),
        vae_golden["output.decode_with_conf_adaptor"],
        rtol=0,
        atol=TOLERANCE,
    )


def test_uncertainty_weight_is_inverse_softplus():
    raw = torch.linspace(-8, 8, 17)
    weight = uncertainty_weight(raw)
    assert (weight > 0).all()
    torch.testing.assert_close(weight * F.softplus(raw), torch.ones(17))


def test_decode_only_vae_has_no_encoder(pointmap_vae):
    assert not any(name.startswith("autoencoder.encoder.") for name in pointmap_vae.state_dict())
    with pytest.raises(RuntimeError, match="without its encoder"):
        pointmap_vae.encode(torch.zeros(1, 3, 32, 32))


@pytest.fixture(scope="module")
def published_vae(published_part) -> dict[str, tuple[int, ...]]:
    """The published first-stage VAE keys and shapes, without the `first_stage_model.` prefix."""
    return published_part("first_stage_model.", {})


def test_name_rules_are_inverse_on_the_published_keys(published_vae):
    for key in published_vae:
        if not key.startswith("encoder_adaptor."):
            assert our_vae_key_to_ldm(ldm_vae_key_to_ours(key, 4), 4) == key


@torch.no_grad()
def test_our_ldm_loading_equals_diffusers_conversion(published_vae):
    """A full-width LDM-named VAE state dict: our rules and diffusers' converter give the same network."""
    generator = torch.Generator().manual_seed(0)
    ldm = {
        key: torch.randn(shape, generator=generator) * 0.05
        for key, shape in published_vae.items()
        if not key.startswith(("encoder_adaptor.", "decoder_adaptor."))
    }
    config = NetworkConfig.full()
    tensors, unexpected = split_model_state(
        {"first_stage_model." + k: v for k, v in ldm.items()}, config, ["vae"]
    )
    assert unexpected == []
    with torch.device("meta"):
        ours = Geo4DVAE(config.vae)
    fill_modules({"vae": ours}, tensors, config, "random LDM VAE")

    with torch.device("meta"):
        reference = AutoencoderKL(**ours.autoencoder.config).eval()
    converted = convert_ldm_vae_checkpoint(ldm, reference.config)
    reference.load_state_dict(converted, strict=True, assign=True)

    ours_state = {key.removeprefix("autoencoder."): value for key, value in ours.state_dict().items()}
    assert ours_state.keys() == converted.keys()
    assert all(torch.equal(ours_state[key], converted[key]) for key in converted)
    image = torch.rand(1, 3, 32, 48, generator=generator) * 2 - 1
    z = ours.encode(image).mean
    torch.testing.assert_close(z, reference.encode(image).latent_dist.mean, rtol=0, atol=0)
    torch.testing.assert_close(ours.decode(z), reference.decode(z).sample, rtol=0, atol=0)


@pytest.mark.parametrize(("preset", "groups"), [("full", 32), ("tiny", 8)])
def test_every_groupnorm_has_the_configured_groups(preset, groups):
    """One channel per group would normalise away each feature's per-image level (a ray map's absolute values)."""
    config = NetworkConfig.preset(preset).vae
    assert config.norm_groups == groups
    vae = Geo4DVAE(replace(config, channels=32, adaptor_channels=32), uncertainty=True)
    norms = [module for module in vae.modules() if isinstance(module, torch.nn.GroupNorm)]
    assert norms and {norm.num_groups for norm in norms} == {groups}
    assert (
        network_config_from_json(network_config_to_json(NetworkConfig.preset(preset))).vae.norm_groups
        == groups
    )

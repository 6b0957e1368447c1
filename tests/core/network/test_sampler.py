"""Geo4D's DDIM sampler: the published schedule, the dynamic rescale, and one golden step."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from geo4d.core.network.sampler import Geo4DSampler, SamplerConfig

GOLDEN = Path(__file__).parents[2] / "data" / "golden" / "ddim.safetensors"


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN)


def test_five_steps_are_the_trailing_timesteps():
    assert Geo4DSampler().timesteps == [999, 799, 599, 399, 199]


def test_schedule_has_zero_terminal_snr_and_matches_the_reference_tables(golden):
    scheduler = Geo4DSampler().scheduler
    assert scheduler.alphas_cumprod[999].item() == 0.0
    # diffusers builds the table in float32, the reference in float64: equal to 4.2e-7.
    torch.testing.assert_close(scheduler.alphas_cumprod, golden["schedule.alphas_cumprod"], rtol=0, atol=1e-6)
    # The step after t=199 lands on alphas_cumprod[0] (0.99915), not on 1.
    assert scheduler.final_alpha_cumprod.item() == pytest.approx(
        golden["schedule.ddim_alphas_prev"][0].item()
    )


def test_dynamic_rescale_only_changes_the_step_from_399():
    sampler = Geo4DSampler()
    factors = [sampler.rescale_factor(index) for index in range(5)]
    assert factors[:3] == [1.0, 1.0, 1.0] and factors[4] == 1.0
    assert round(factors[3], 4) == 1.2148
    assert factors[3] == pytest.approx((sampler.scale_arr[199] / sampler.scale_arr[399]).item())


def test_first_step_matches_the_reference(golden):
    x_prev = Geo4DSampler().step(golden["step0.model_output_v"], 0, golden["input.x_T"])
    torch.testing.assert_close(x_prev, golden["step0.x_prev"], rtol=0, atol=5e-6)


def test_rescaled_step_is_ddim_with_scaled_clean_prediction():
    sampler = Geo4DSampler()
    generator = torch.Generator().manual_seed(0)
    sample, velocity = torch.randn(2, 1, 4, 4, 4, generator=generator)
    alpha, alpha_prev = sampler.scheduler.alphas_cumprod[399], sampler.scheduler.alphas_cumprod[199]
    pred_x0 = alpha.sqrt() * sample - (1 - alpha).sqrt() * velocity
    eps = alpha.sqrt() * velocity + (1 - alpha).sqrt() * sample
    expected = alpha_prev.sqrt() * pred_x0 * sampler.rescale_factor(3) + (1 - alpha_prev).sqrt() * eps
    torch.testing.assert_close(sampler.step(velocity, 3, sample), expected, rtol=0, atol=1e-6)


def test_initial_noise_is_seeded():
    first = Geo4DSampler.initial_noise((1, 16, 2, 4, 4), seed=7)
    assert torch.equal(first, Geo4DSampler.initial_noise((1, 16, 2, 4, 4), seed=7))
    assert not torch.equal(first, Geo4DSampler.initial_noise((1, 16, 2, 4, 4), seed=8))


@pytest.mark.parametrize("field, value", [("steps", 0), ("rescale_base", 1.5), ("rescale_steps", 0)])
def test_config_rejects_out_of_range_values(field, value):
    with pytest.raises(ValueError, match=field):
        SamplerConfig(**{field: value})

"""The UNet's training: v-prediction on the zero-terminal-SNR schedule, timestep draws, loss falls in a few steps."""

from __future__ import annotations

from dataclasses import replace

import torch

from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.unet import UNet3D
from geo4d.core.train.config import TrainConfig
from geo4d.core.train.denoiser import (
    LatentSet,
    TimestepSampler,
    noisy_and_velocity,
    train_unet,
    velocity_errors,
)


def test_velocity_targets_on_the_zero_terminal_snr_schedule() -> None:
    sampler = TimestepSampler(1.0)
    alphas = sampler.alphas_cumprod
    assert alphas[999] == 0 and abs(alphas[0].item() - (1 - 0.00085)) < 1e-6
    generator = torch.Generator().manual_seed(0)
    x0, noise = (
        torch.randn(3, 16, 2, 4, 4, generator=generator),
        torch.randn(3, 16, 2, 4, 4, generator=generator),
    )
    t = torch.tensor([999, 500, 1])
    x_t, velocity = noisy_and_velocity(x0, noise, alphas[t])
    torch.testing.assert_close(x_t[0], noise[0])
    torch.testing.assert_close(velocity[0], -x0[0])  # at t = 999 the UNet must produce the clean latent
    a = alphas[t].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(a.sqrt() * x_t - (1 - a).sqrt() * velocity, x0, atol=1e-5, rtol=0)


def test_timestep_draws_mix_the_ddim_steps_and_uniform_ones() -> None:
    generator = torch.Generator().manual_seed(1)
    only_ddim = TimestepSampler(1.0).sample(500, generator)
    assert set(only_ddim.tolist()) == {999, 799, 599, 399, 199}
    mixed = TimestepSampler(0.5).sample(2000, generator)
    share = torch.isin(mixed, torch.tensor([999, 799, 599, 399, 199])).float().mean().item()
    assert 0.4 < share < 0.6 and mixed.min() >= 0 and mixed.max() <= 999
    # The tiny model samples in one step: its share of the draws all go to t = 999.
    one_step = TimestepSampler(0.5, NetworkConfig.tiny().sampling_steps).sample(2000, generator)
    assert 0.4 < (one_step == 999).float().mean().item() < 0.6


def test_a_few_unet_steps_reduce_the_v_loss(tmp_path) -> None:
    torch.manual_seed(3)
    network = NetworkConfig.tiny()
    generator = torch.Generator().manual_seed(3)
    rgb = torch.randn(1, 2, 16, 4, 8, 8, generator=generator)
    # Targets that depend on the frame's RGB latent: a task the UNet can learn from c_concat.
    targets = torch.cat([rgb[0, 0].transpose(0, 1)] * 4)[None] * 2
    latents = LatentSet(rgb, torch.full_like(rgb, 1e-3), targets, torch.tensor([[0, 0, 0]]))
    unet = UNet3D(network.unet)
    context = torch.nn.Parameter(torch.randn(1, 77 + 16 * 16, network.unet.context_dim))
    before = context.detach().clone()
    config = replace(
        TrainConfig.toy(), unet_steps=12, unet_batch=1, warmup_steps=2, log_every=4, unet_lr=2e-3
    )
    config = replace(config, inference_timestep_share=1.0)
    history = train_unet(
        unet,
        context,
        latents,
        config,
        1.0,
        5,  # the published network's five DDIM timesteps
        torch.device("cpu"),
        log_path=tmp_path / "l.jsonl",
    )
    assert history[-1]["v_mse"] < 0.8 * history[0]["v_mse"]
    assert not torch.equal(context.detach(), before) and not context.requires_grad


def test_training_rescale_scales_the_clean_latents_like_the_sampler() -> None:
    sampler = TimestepSampler(1.0)
    assert sampler.rescale[0] == 1.0 and abs(sampler.rescale[999].item() - 0.7) < 1e-6
    assert abs(sampler.rescale[199].item() - (1.0 - 0.3 * 199 / 399)) < 1e-6
    assert TrainConfig.shipped().training_rescale is False  # the shipped model was trained without it


def test_unet_ema_ships_the_moving_average_of_the_weights() -> None:
    """With a decay near 1 the average barely leaves the first step's weights; without it the last step wins."""
    network = NetworkConfig.tiny()
    generator = torch.Generator().manual_seed(4)
    rgb = torch.randn(1, 2, 16, 4, 8, 8, generator=generator)
    latents = LatentSet(
        rgb,
        torch.full_like(rgb, 1e-3),
        torch.randn(1, 16, 16, 8, 8, generator=generator),
        torch.tensor([[0, 0, 0]]),
    )
    config = replace(TrainConfig.toy(), unet_batch=1, warmup_steps=1, unet_lr=1e-2)

    def trained(steps: int, ema: float) -> torch.Tensor:
        torch.manual_seed(4)
        unet = UNet3D(network.unet)
        context = torch.nn.Parameter(torch.zeros(1, 77 + 16 * 16, network.unet.context_dim))
        train_unet(
            unet,
            context,
            latents,
            replace(config, unet_steps=steps, unet_ema=ema),
            1.0,
            1,
            torch.device("cpu"),
        )
        return torch.cat([p.detach().flatten() for p in (*unet.parameters(), context)])

    first_step, last_step, averaged = trained(1, 0.0), trained(4, 0.0), trained(4, 0.999)
    assert (averaged - first_step).norm() < 0.05 * (last_step - first_step).norm()


def test_the_temporal_term_weighs_the_error_of_the_change_between_frames() -> None:
    """An error that every frame shares costs the plain MSE; one that flips sign from frame to frame
    (a wrong motion) costs 1 + 4 x the weight times as much."""
    target = torch.randn(2, 16, 16, 4, 4, generator=torch.Generator().manual_seed(5))
    steady = target + 0.1
    flipping = target + 0.1 * (-1.0) ** torch.arange(16).view(1, 1, -1, 1, 1)
    for weight in (0.0, 0.5):
        torch.testing.assert_close(velocity_errors(steady, target, weight), torch.full((2,), 0.01))
    torch.testing.assert_close(velocity_errors(flipping, target, 0.0), torch.full((2,), 0.01))
    torch.testing.assert_close(velocity_errors(flipping, target, 0.5), torch.full((2,), 0.01 * (1 + 0.5 * 4)))

"""Geo4D's DDIM sampler: diffusers' DDIMScheduler with the published settings plus DynamiCrafter's rescale.

The scheduler holds timesteps and the update; it never sees a model. The loop that calls the UNet is
written out in the pipeline (core/network/window_pipeline.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler

logger = logging.getLogger(__name__)

TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


@dataclass(frozen=True)
class SamplerConfig:
    """DDIM settings of the released Geo4D inference.

    steps: DDIM steps (5 gives t = 999, 799, 599, 399, 199).
    rescale_base: DynamiCrafter's dynamic-rescale floor; rescale_steps: timesteps over which the
    rescale factor falls linearly from 1 to rescale_base (it stays at rescale_base after).
    """

    steps: int = 5
    rescale_base: float = 0.7
    rescale_steps: int = 400

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= TRAIN_TIMESTEPS:
            raise ValueError(f"SamplerConfig.steps = {self.steps}; allowed 1..{TRAIN_TIMESTEPS}.")
        if not 0.0 < self.rescale_base <= 1.0:
            raise ValueError(f"SamplerConfig.rescale_base = {self.rescale_base}; allowed (0, 1].")
        if not 1 <= self.rescale_steps <= TRAIN_TIMESTEPS:
            raise ValueError(
                f"SamplerConfig.rescale_steps = {self.rescale_steps}; allowed 1..{TRAIN_TIMESTEPS}."
            )


def make_scheduler(steps: int) -> DDIMScheduler:
    """diffusers' DDIMScheduler configured as Geo4D's sampler, timesteps set for `steps` steps.

    LDM "linear" betas are diffusers' "scaled_linear" (linear in sqrt space); zero terminal SNR;
    v-prediction; trailing spacing; eta 0 (step's default); at the last step alpha_prev is
    alphas_cumprod[0] (set_alpha_to_one=False), not 1. diffusers builds the table in float32: it
    differs from the reference's float64-built table by at most 4.2e-7.
    """
    scheduler = DDIMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        set_alpha_to_one=False,
        clip_sample=False,
        thresholding=False,
    )
    scheduler.set_timesteps(steps)
    return scheduler


class Geo4DSampler:
    """Timesteps and the DDIM update with dynamic rescale of the predicted clean latent."""

    def __init__(self, config: SamplerConfig | None = None) -> None:
        self.config = config or SamplerConfig()
        self.scheduler = make_scheduler(self.config.steps)
        ramp = torch.linspace(1.0, self.config.rescale_base, self.config.rescale_steps)
        tail = torch.full((TRAIN_TIMESTEPS,), self.config.rescale_base)
        self.scale_arr = torch.cat([ramp, tail])  # [rescale_steps + 1000] float32, indexed by timestep

    @property
    def timesteps(self) -> list[int]:
        """DDIM timesteps in execution order, e.g. [999, 799, 599, 399, 199] for 5 steps."""
        return [int(t) for t in self.scheduler.timesteps]

    def rescale_factor(self, index: int) -> float:
        """Factor on pred_x0 at step `index` (execution order): scale_arr[t_next] / scale_arr[t].

        t_next is the timestep of the following step; the last step has none and keeps its prediction
        (factor 1), as in DynamiCrafter.
        """
        timesteps = self.timesteps
        t = timesteps[index]
        t_next = timesteps[index + 1] if index + 1 < len(timesteps) else t
        return float(self.scale_arr[t_next] / self.scale_arr[t])

    def step(self, velocity: torch.Tensor, index: int, sample: torch.Tensor) -> torch.Tensor:
        """One DDIM step (eta 0) from the UNet's v-prediction; returns the sample at the next timestep.

        velocity, sample: same shape (e.g. [B, 16, L, h, w]) and dtype. DynamiCrafter multiplies pred_x0
        by rescale_factor before the update while keeping the predicted noise, so the result is the
        plain DDIM update plus sqrt(alpha_prev) * (factor - 1) * pred_x0.
        """
        t = self.timesteps[index]
        output = self.scheduler.step(velocity, t, sample, eta=0.0)
        factor = self.rescale_factor(index)
        if factor == 1.0:
            return output.prev_sample
        alpha_prev = self._alpha_prev(t)
        return output.prev_sample + (alpha_prev**0.5 * (factor - 1.0)) * output.pred_original_sample

    def _alpha_prev(self, t: int) -> float:
        """alphas_cumprod at the timestep the update from t lands on (diffusers' rule)."""
        prev = t - TRAIN_TIMESTEPS // self.scheduler.num_inference_steps
        alphas = self.scheduler.alphas_cumprod
        return float(alphas[prev] if prev >= 0 else self.scheduler.final_alpha_cumprod)

    @staticmethod
    def initial_noise(
        shape: tuple[int, ...],
        seed: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """x_T ~ N(0, 1) drawn on the CPU from `seed`, so the same seed gives the same noise on any device."""
        generator = torch.Generator("cpu").manual_seed(seed)
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)

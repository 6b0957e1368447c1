"""What every training stage shares: AdamW with warmup and cosine decay, and the loss log."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

FINAL_LR_FRACTION = 0.1
GRADIENT_CLIP = 1.0


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds up the VAE's convolutions on `device`: on a GPU, and on a CPU with
    AVX-512 (about twice as fast as float32). Elsewhere torch emulates bf16: the three VAE training tests
    took 566 s in bf16 against 45 s in float32 on a 2-core AVX2 CPU."""
    return device.type == "cuda" or (
        device.type == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512"
    )


def mixed_precision(device: torch.device) -> torch.autocast:
    """bf16 autocast for the VAE's convolutions where bf16_is_fast, float32 (autocast off) elsewhere;
    weights, optimiser state and losses stay float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_is_fast(device))


def make_optimizer(
    parameters: list[torch.nn.Parameter], lr: float, steps: int, warmup: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW at `lr`, linear warmup over `warmup` steps, then cosine decay to FINAL_LR_FRACTION x lr."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimisation_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LambdaLR
) -> None:
    """Backward, clip the gradient norm to GRADIENT_CLIP, step, advance the schedule, clear gradients."""
    loss.backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(parameters, GRADIENT_CLIP)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)


class LossLog:
    """Running means of named losses, written every `every` steps to the log and as JSON lines to `path`."""

    def __init__(self, stage: str, path: Path | None, every: int) -> None:
        self.stage, self.path, self.every = stage, path, every
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.started = time.perf_counter()
        self.history: list[dict[str, float]] = []

    def add(self, step: int, total_steps: int, **losses: float) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
        if (step + 1) % self.every and step + 1 != total_steps:
            return
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        record = {
            "stage": self.stage,
            "step": step + 1,
            "of": total_steps,
            "seconds": round(time.perf_counter() - self.started, 1),
            **{name: round(value, 6) for name, value in means.items()},
        }
        self.history.append(record)
        logger.info(
            "%s step %d/%d (%.0f s): %s",
            self.stage,
            step + 1,
            total_steps,
            record["seconds"],
            ", ".join(f"{name} {value:.5f}" for name, value in means.items()),
        )
        if self.path is not None:
            with self.path.open("a") as file:
                file.write(json.dumps(record) + "\n")
        self.sums, self.counts = {}, {}

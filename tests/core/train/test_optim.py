"""Training precision: bf16 autocast where the device runs it fast, float32 where torch would emulate it."""

from __future__ import annotations

import pytest
import torch

from geo4d.core.train.optim import bf16_is_fast, mixed_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("capability", "dtype"), [("AVX512", torch.bfloat16), ("AVX2", torch.float32)])
def test_vae_convolutions_run_in_bf16_only_on_a_cpu_with_avx512(monkeypatch, capability, dtype) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    convolution = torch.nn.Conv2d(3, 4, 3)
    with mixed_precision(CPU):
        output = convolution(torch.randn(1, 3, 8, 8))
    assert output.dtype == dtype
    assert convolution.weight.dtype == torch.float32  # the weights themselves stay float32


def test_bf16_is_fast_on_a_gpu_and_not_on_a_cpu_without_avx512(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "NO AVX")
    assert bf16_is_fast(torch.device("cuda")) and not bf16_is_fast(CPU)

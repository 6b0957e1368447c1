"""The image resampler: golden vectors for both input paths, the published key set, bad input."""

from __future__ import annotations

import pytest
import torch

from geo4d.core.network.config import NetworkConfig, ResamplerConfig
from geo4d.core.network.resampler import CHECKPOINT_RENAMES, Resampler

GOLDEN_CONFIG = ResamplerConfig(
    dim=8,
    depth=2,
    dim_head=4,
    heads=3,
    num_queries=16,
    embedding_dim=24,
    output_dim=8,
    ff_mult=4,
    video_length=4,
)


@pytest.fixture(scope="module")
def golden_resampler(golden) -> tuple[Resampler, dict[str, torch.Tensor]]:
    tensors = golden("resampler")
    resampler = Resampler(GOLDEN_CONFIG).eval()
    weights = {
        key.removeprefix("weights."): value for key, value in tensors.items() if key.startswith("weights.")
    }
    resampler.load_state_dict(weights, strict=True)
    return resampler, tensors


@pytest.mark.parametrize("path", ["3d", "4d"])
def test_resampler_reproduces_the_authors_output(golden_resampler, path: str) -> None:
    resampler, tensors = golden_resampler
    with torch.no_grad():
        latents = resampler(tensors[f"input.tokens_{path}"])
    torch.testing.assert_close(latents, tensors[f"output.latents_{path}"], atol=2e-5, rtol=0)


def test_per_frame_path_keeps_frames_apart(golden_resampler) -> None:
    resampler, tensors = golden_resampler
    tokens = tensors["input.tokens_4d"].clone()
    with torch.no_grad():
        before = resampler(tokens)
        tokens[:, 2] += 1.0
        after = resampler(tokens)
    changed = (after - before).abs().amax(dim=-1)[0].reshape(4, 16).amax(dim=1)
    assert changed[2] > 1e-3
    assert torch.all(changed[[0, 1, 3]] == 0)


def test_full_resampler_has_the_published_keys_and_shapes(published_part, shapes_of) -> None:
    with torch.device("meta"):
        resampler = Resampler(NetworkConfig.full().resampler)
    assert shapes_of(resampler) == published_part("image_proj_model.", CHECKPOINT_RENAMES)


def test_bad_input_shape_is_refused(golden_resampler) -> None:
    resampler, _ = golden_resampler
    with pytest.raises(ValueError, match=r"expected \[B, S, 24\]"):
        resampler(torch.zeros(1, 3, 257, 24))

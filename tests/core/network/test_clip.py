"""The CLIP towers and the constant context: golden text vectors, prompt ids, zero image, published keys."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geo4d.core.network import clip
from geo4d.core.network.clip import (
    ImageEmbedder,
    TextTower,
    constant_context,
    prompt_token_ids,
    zero_image_clip_input,
)
from geo4d.core.network.config import NetworkConfig, TextTowerConfig
from geo4d.core.network.resampler import Resampler

GOLDEN_CONFIG = TextTowerConfig(width=8, heads=2, layers=3, embed_dim=8)


@pytest.fixture(scope="module")
def golden_text(golden) -> tuple[TextTower, dict[str, torch.Tensor]]:
    tensors = golden("text_encoder")
    tower = TextTower(GOLDEN_CONFIG).eval()
    prefix = "weights.model."
    tower.load_state_dict(
        {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}, strict=True
    )
    return tower, tensors


@pytest.mark.parametrize("prompt", ["", "_empty"])
def test_text_tower_reproduces_the_authors_output(golden_text, prompt: str) -> None:
    tower, tensors = golden_text
    with torch.no_grad():
        features = tower(tensors[f"input.token_ids{prompt}"])
    torch.testing.assert_close(features, tensors[f"output.penultimate{prompt}"], atol=2e-5, rtol=0)


def test_prompt_token_ids_match_the_authors_tokeniser(golden) -> None:
    assert torch.equal(prompt_token_ids(), golden("text_encoder")["input.token_ids"])


def test_zero_image_input_is_clip_preprocessing_of_a_zero_frame() -> None:
    frame = torch.zeros(1, 3, 320, 512)  # a zero image in [-1, 1] at Geo4D's default size
    resized = F.interpolate(frame, size=(224, 224), mode="bicubic", align_corners=True, antialias=True)
    mean, std = torch.tensor(clip.CLIP_MEAN)[:, None, None], torch.tensor(clip.CLIP_STD)[:, None, None]
    expected = ((resized + 1) / 2 - mean) / std
    torch.testing.assert_close(zero_image_clip_input(), expected, atol=1e-6, rtol=0)


def test_full_towers_have_the_published_keys_and_shapes(published_part, shapes_of) -> None:
    config = NetworkConfig.full()
    with torch.device("meta"):
        text, image = TextTower(config.text), ImageEmbedder(config.visual)
    assert shapes_of(text) == published_part("cond_stage_model.model.", clip.CHECKPOINT_RENAMES)
    expected_image = published_part("embedder.model.", clip.CHECKPOINT_RENAMES, clip.CHECKPOINT_UNUSED)
    assert shapes_of(image) == expected_image
    everything = published_part("embedder.model.", clip.CHECKPOINT_RENAMES)
    assert set(everything) - set(expected_image) == set(clip.CHECKPOINT_UNUSED)
    assert image.visual.config.num_tokens == 257


def test_constant_context_is_prompt_text_then_resampled_zero_image() -> None:
    config = NetworkConfig.tiny()
    torch.manual_seed(4)
    text, image, resampler = TextTower(config.text), ImageEmbedder(config.visual), Resampler(config.resampler)
    context = constant_context(text, image, resampler)
    frames, per_frame = config.resampler.video_length, config.resampler.num_queries
    assert context.shape == (1, 77 + per_frame * frames, config.unet.context_dim)
    with torch.no_grad():
        prompt_features = text(prompt_token_ids())
        blank = text(torch.zeros(1, 77, dtype=torch.long))
    torch.testing.assert_close(context[:, :77], prompt_features)
    assert (context[:, :77] - blank).abs().max() > 1e-3
    torch.testing.assert_close(constant_context(text, image, resampler), context, atol=0, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_packed_attention_equals_torch_multihead_attention(causal: bool) -> None:
    """open_clip's blocks run torch's MultiheadAttention; the visual tower uses it without a mask."""
    torch.manual_seed(5)
    ours = clip.PackedSelfAttention(width=32, heads=4)
    torch.nn.init.normal_(ours.in_proj_bias)
    theirs = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 9, 32)
    mask = torch.full((9, 9), float("-inf")).triu(1) if causal else None
    with torch.no_grad():
        expected, _ = theirs(x, x, x, attn_mask=mask, need_weights=False)
        torch.testing.assert_close(ours(x, causal), expected, atol=1e-6, rtol=0)

"""OpenCLIP ViT-H-14 text and visual towers, used once per checkpoint to compute Geo4D's constant context.

Geo4D always conditions on the same prompt and on a zero image, so the UNet's cross-attention context
(77 text tokens + 16 resampled image tokens per frame) is a constant of the checkpoint:
`constant_context()` computes it, and inference never needs these towers in memory.

Checkpoint names: `TextTower.state_dict()` keys equal the published `cond_stage_model.model.*` keys
with that prefix stripped. `ImageEmbedder.state_dict()` keys equal the published `embedder.model.*`
keys with that prefix stripped, except `CHECKPOINT_UNUSED`: leftovers of the text tower that the image
embedder carries but never runs, which a loader skips. `CHECKPOINT_RENAMES` is empty.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from .config import TextTowerConfig, VisualTowerConfig
from .resampler import Resampler

logger = logging.getLogger(__name__)

CHECKPOINT_RENAMES: dict[str, str] = {}
CHECKPOINT_UNUSED: tuple[str, ...] = (
    "positional_embedding",
    "text_projection",
    "logit_scale",
    "token_embedding.weight",
    "ln_final.weight",
    "ln_final.bias",
)

GEO4D_PROMPT = "Output a video that assigns each 3D location in the world a consistent color."
# open_clip's tokenisation of GEO4D_PROMPT: start-of-text, BPE ids of the lower-cased text, end-of-text.
# No tokenizer is a dependency; the test checks these against the golden ids of the authors' run.
GEO4D_PROMPT_TOKEN_IDS: tuple[int, ...] = (
    49406, 17255, 320, 1455, 682, 587, 4659, 2416, 274, 323, 4372, 530, 518, 1002, 320, 16439, 3140, 269, 49407,
)  # fmt: skip

# CLIP's image normalisation (mean, std per RGB channel of [0, 1] images).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class PackedSelfAttention(nn.Module):
    """Self-attention with q, k, v packed in one projection (torch MultiheadAttention's parameter names)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        """`x [N, L, width]` -> `[N, L, width]`; `causal` masks keys after each query."""
        q, k, v = rearrange(
            F.linear(x, self.in_proj_weight, self.in_proj_bias),
            "n l (three h d) -> three n h l d",
            three=3,
            h=self.heads,
        )
        return self.out_proj(
            rearrange(F.scaled_dot_product_attention(q, k, v, is_causal=causal), "n h l d -> n l (h d)")
        )


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) with an exact-GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = PackedSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=nn.Linear(width, mlp_ratio * width),
                gelu=nn.GELU(),
                c_proj=nn.Linear(mlp_ratio * width, width),
            )
        )

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of `ResidualAttentionBlock`s, runnable up to any depth."""

    def __init__(self, width: int, heads: int, layers: int, mlp_ratio: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(layers))

    def forward(self, x: torch.Tensor, causal: bool, layers: int | None = None) -> torch.Tensor:
        """`x [N, L, width]` through the first `layers` blocks (all when None)."""
        for block in self.resblocks[:layers]:
            x = block(x, causal)
        return x


class TextTower(nn.Module):
    """OpenCLIP text transformer; Geo4D reads the penultimate block's output after ln_final.

    `text_projection`, `logit_scale` and the last block are in the checkpoint but not used by Geo4D.
    """

    def __init__(self, config: TextTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.zeros(config.context_length, config.width))
        self.transformer = Transformer(config.width, config.heads, config.layers, config.mlp_ratio)
        self.ln_final = nn.LayerNorm(config.width)
        self.text_projection = nn.Parameter(torch.zeros(config.width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """`token_ids [B, context_length]` int64 -> penultimate-layer features `[B, context_length, width]`."""
        x = self.token_embedding(token_ids) + self.positional_embedding
        x = self.transformer(x, causal=True, layers=self.config.layers - 1)
        return self.ln_final(x)


class VisionTransformer(nn.Module):
    """OpenCLIP ViT (`visual`): patch conv, class token, positional embedding, ln_pre, transformer.

    `ln_post` and `proj` are in the checkpoint but not used: Geo4D takes the tokens before ln_post.
    """

    def __init__(self, config: VisualTowerConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.conv1 = nn.Conv2d(3, width, config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(config.num_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, config.heads, config.layers, config.mlp_ratio)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, config.embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`images [B, 3, S, S]` CLIP-normalised (S = image_size) -> tokens `[B, 1 + (S/patch)^2, width]`."""
        patches = rearrange(self.conv1(images), "b c gh gw -> b (gh gw) c")
        cls = repeat(self.class_embedding, "c -> b 1 c", b=patches.shape[0]).to(patches.dtype)
        x = torch.cat([cls, patches], dim=1) + self.positional_embedding
        return self.transformer(self.ln_pre(x), causal=False)


class ImageEmbedder(nn.Module):
    """The checkpoint's `embedder.model` minus its unused text leftovers: only the `visual` tower."""

    def __init__(self, config: VisualTowerConfig) -> None:
        super().__init__()
        self.visual = VisionTransformer(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`images [B, 3, S, S]` CLIP-normalised -> tokens before ln_post `[B, num_tokens, width]`."""
        return self.visual(images)


def prompt_token_ids(context_length: int = 77) -> torch.Tensor:
    """The Geo4D prompt's token ids, zero-padded: `[1, context_length]` int64."""
    ids = torch.zeros(1, context_length, dtype=torch.long)
    ids[0, : len(GEO4D_PROMPT_TOKEN_IDS)] = torch.tensor(GEO4D_PROMPT_TOKEN_IDS)
    return ids


def zero_image_clip_input(image_size: int = 224) -> torch.Tensor:
    """The visual tower's input for Geo4D's zero image: `[1, 3, image_size, image_size]` float32.

    The released model feeds `first frame * 0`, an image of zeros in [-1, 1] RGB. Its preprocessing
    (bicubic resize to 224, then (x + 1) / 2, then CLIP's mean/std normalisation) maps zeros to the
    constant (0.5 - mean) / std per channel; the resize of a constant image is that constant.
    """
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    value = (0.5 - mean) / std
    return repeat(value, "c -> 1 c h w", h=image_size, w=image_size).contiguous()


@torch.no_grad()
def constant_context(
    text_tower: TextTower, image_embedder: ImageEmbedder, resampler: Resampler
) -> torch.Tensor:
    """Geo4D's whole cross-attention context: `[1, 77 + 16 * video_length, context_dim]` float32.

    Text features of `GEO4D_PROMPT` (penultimate layer), then the resampler's frame-major image tokens
    computed from the zero image's CLIP tokens. Runs on the towers' device and dtype.
    """
    parameter = next(text_tower.parameters())
    ids = prompt_token_ids(text_tower.config.context_length).to(parameter.device)
    text = text_tower(ids)
    image_size = image_embedder.visual.config.image_size
    visual_parameter = next(image_embedder.parameters())
    pixels = zero_image_clip_input(image_size).to(visual_parameter.device, visual_parameter.dtype)
    image = resampler(image_embedder(pixels).to(next(resampler.parameters()).dtype))
    return torch.cat([text.float(), image.float()], dim=1)

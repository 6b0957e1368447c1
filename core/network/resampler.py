"""The Geo4D image resampler (`image_proj_model`): CLIP image tokens -> 16 context tokens per frame.

A Perceiver resampler: learned query latents attend to the projected CLIP tokens (and to themselves)
through `depth` layers of attention + MLP. Checkpoint names: `state_dict()` keys equal the published
`image_proj_model.*` keys with that prefix stripped; `CHECKPOINT_RENAMES` is empty.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from .config import ResamplerConfig

logger = logging.getLogger(__name__)

CHECKPOINT_RENAMES: dict[str, str] = {}


class PerceiverAttention(nn.Module):
    """Latents attend to `[image tokens; latents]`: `tokens [N, S, dim]`, `latents [N, Q, dim]` -> `[N, Q, dim]`."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        tokens, latents = self.norm1(tokens), self.norm2(latents)
        keys, values = self.to_kv(torch.cat([tokens, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (
            rearrange(a, "n l (h d) -> n h l d", h=self.heads) for a in (self.to_q(latents), keys, values)
        )
        return self.to_out(rearrange(F.scaled_dot_product_attention(q, k, v), "n h l d -> n l (h d)"))


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm, Linear (no bias), exact GELU, Linear (no bias): `[..., dim] -> [..., dim]`."""
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, mult * dim, bias=False),
        nn.GELU(),
        nn.Linear(mult * dim, dim, bias=False),
    )


class Resampler(nn.Module):
    """`num_queries x video_length` learned latents (frame-major) resampled from CLIP image tokens."""

    def __init__(self, config: ResamplerConfig) -> None:
        super().__init__()
        self.config = config
        queries = config.num_queries * config.video_length
        self.latents = nn.Parameter(torch.randn(1, queries, config.dim) / config.dim**0.5)
        self.proj_in = nn.Linear(config.embedding_dim, config.dim)
        self.proj_out = nn.Linear(config.dim, config.output_dim)
        self.norm_out = nn.LayerNorm(config.output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(config.dim, config.heads, config.dim_head),
                    _feed_forward(config.dim, config.ff_mult),
                ]
            )
            for _ in range(config.depth)
        )

    def _resample(self, tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """`tokens [N, S, embedding_dim]`, `latents [N, Q, dim]` -> `[N, Q, output_dim]`."""
        tokens = self.proj_in(tokens)
        for attention, feed_forward in self.layers:
            latents = attention(tokens, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Context tokens `[B, video_length * num_queries, output_dim]`, frame-major.

        tokens: `[B, S, embedding_dim]` (one image's CLIP tokens, seen by every frame's queries; the
        path the released model uses) or `[B, video_length, S, embedding_dim]` (per-frame images; frame
        f's queries see only frame f's tokens).
        """
        config = self.config
        if tokens.ndim == 3:
            return self._resample(tokens, repeat(self.latents, "1 q d -> b q d", b=tokens.shape[0]))
        if tokens.ndim == 4 and tokens.shape[1] == config.video_length:
            batch = tokens.shape[0]
            latents = repeat(self.latents, "1 (t q) d -> (b t) q d", b=batch, t=config.video_length)
            out = self._resample(rearrange(tokens, "b t s e -> (b t) s e"), latents)
            return rearrange(out, "(b t) q d -> b (t q) d", b=batch)
        raise ValueError(
            f"resampler input shape {tuple(tokens.shape)}: expected [B, S, {config.embedding_dim}] or "
            f"[B, {config.video_length}, S, {config.embedding_dim}]"
        )

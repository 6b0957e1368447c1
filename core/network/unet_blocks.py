"""The blocks of the Geo4D UNet: float32 GroupNorm, embeddings, resampling, attention, the spatial and
temporal transformers, and the ResBlock with its temporal convs.

Layout, top to bottom: embeddings and small layers, attention, transformers, ResBlock.
Activations inside the UNet are per-frame images `[(b t), c, h, w]`; temporal layers fold them back to
`[b, c, t, h, w]`. The cross-attention context is 77 text tokens followed by 16 image tokens per frame;
frame f attends to the text plus its own 16 image tokens, with separate key/value projections for the
image tokens (`to_k_ip`, `to_v_ip`). Attribute names are the checkpoint's (see core.network.unet).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import GROUP_NORM_GROUPS, UNetConfig

logger = logging.getLogger(__name__)

UNET_NORM_EPS = 1e-5  # GroupNorm of ResBlocks, temporal convs and the output head
TRANSFORMER_NORM_EPS = 1e-6  # GroupNorm in front of spatial and temporal transformers


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of timesteps or fps, `[B] -> [B, dim]` float32, cosines first then sines.

    Frequencies are exp(-ln(max_period) * i / (dim/2)) for i < dim/2, computed in float32 as the
    published model does.
    """
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=values.device) / half
    frequencies = torch.exp(-math.log(max_period) * exponents)
    angles = values.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class GroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the activation dtype (stable in bf16/fp16), cast back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def group_norm(channels: int, eps: float = UNET_NORM_EPS) -> GroupNorm:
    return GroupNorm(GROUP_NORM_GROUPS, channels, eps=eps)


class PointwiseConv1d(nn.Conv1d):
    """A kernel-1 Conv1d (checkpoint weight layout `[out, in, 1]`) applied to channel-last tokens `[..., in]`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[..., 0], self.bias)


class Downsample(nn.Module):
    """Stride-2 3x3 conv: `[N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv: `[N, C, H, W] -> [N, C, 2H, 2W]`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Attention(nn.Module):
    """Multi-head attention through scaled_dot_product_attention (scale 1/sqrt(head_dim)).

    Without `cross` it is self-attention. With `cross` (the UNet config) the context is split after
    `cross.text_tokens`: the text part goes through `to_k`/`to_v`, the image part through
    `to_k_ip`/`to_v_ip`, and the result is text attention + `cross.image_attention_scale` x image
    attention (one query, two softmaxes).
    """

    def __init__(self, query_dim: int, heads: int, head_dim: int, cross: UNetConfig | None = None) -> None:
        super().__init__()
        inner = heads * head_dim
        context_dim = cross.context_dim if cross else query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Identity())  # [1] is dropout in training
        if cross:
            self.text_tokens = cross.text_tokens
            self.image_scale = cross.image_attention_scale
            self.to_k_ip = nn.Linear(context_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner, bias=False)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """`q [N, Lq, h*d]`, `k, v [N, Lk, h*d]` -> `[N, Lq, h*d]`."""
        q, k, v = (rearrange(a, "n l (h d) -> n h l d", h=self.heads) for a in (q, k, v))
        return rearrange(F.scaled_dot_product_attention(q, k, v), "n h l d -> n l (h d)")

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """`x [N, L, query_dim]`, `context [N, 77 + image tokens, context_dim]` or None -> `[N, L, query_dim]`."""
        q = self.to_q(x)
        if context is None:
            out = self._attend(q, self.to_k(x), self.to_v(x))
        else:
            text, image = context[:, : self.text_tokens], context[:, self.text_tokens :]
            out = self._attend(q, self.to_k(text), self.to_v(text))
            out = out + self.image_scale * self._attend(q, self.to_k_ip(image), self.to_v_ip(image))
        return self.to_out(out)


class GEGLU(nn.Module):
    """Gated GELU: `[..., dim] -> [..., inner]`, value half times GELU(gate half) of one projection."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU MLP with hidden width 4 x dim: `[..., dim] -> [..., dim]`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = 4 * dim
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Identity(), nn.Linear(inner, dim))  # [1]: dropout slot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, then text + image cross-attention (with `cross`, the UNet config)
    or a second self-attention (without), then the MLP."""

    def __init__(self, dim: int, heads: int, head_dim: int, cross: UNetConfig | None = None) -> None:
        super().__init__()
        self.attn1 = Attention(dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, head_dim, cross)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """`x [N, L, dim]`, `context [N, S, context_dim]` (cross blocks) or None -> `[N, L, dim]`."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Attention over the pixels of each frame, with text + that frame's image tokens as context."""

    def __init__(self, channels: int, config: UNetConfig) -> None:
        super().__init__()
        heads, head_dim = channels // config.head_channels, config.head_channels
        inner = heads * head_dim
        self.norm = group_norm(channels, TRANSFORMER_NORM_EPS)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, heads, head_dim, cross=config) for _ in range(config.transformer_depth)
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """`x [(b t), c, h, w]`, `context [(b t), 77 + 16, context_dim]` -> `[(b t), c, h, w]`."""
        height, width = x.shape[-2:]
        tokens = self.proj_in(rearrange(self.norm(x), "n c h w -> n (h w) c"))
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        return rearrange(self.proj_out(tokens), "n (h w) c -> n c h w", h=height, w=width) + x


class TemporalTransformer(nn.Module):
    """Self-attention along time at every pixel (no position encoding, not causal).

    Its GroupNorm takes statistics over all frames of a clip. `pointwise_conv=True` gives the 1x1
    Conv1d projections of `init_attn`; the other temporal transformers use Linear projections.
    """

    def __init__(
        self, channels: int, heads: int, head_dim: int, depth: int, pointwise_conv: bool = False
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        projection = PointwiseConv1d if pointwise_conv else nn.Linear
        self.norm = group_norm(channels, TRANSFORMER_NORM_EPS)
        self.proj_in = projection(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, heads, head_dim) for _ in range(depth)
        )
        self.proj_out = projection(inner, channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """`x [(b t), c, h, w]` with t = `frames` -> `[(b t), c, h, w]`."""
        height, width = x.shape[-2:]
        clip = rearrange(x, "(b t) c h w -> b c t h w", t=frames)
        tokens = self.proj_in(rearrange(self.norm(clip), "b c t h w -> (b h w) t c"))
        for block in self.transformer_blocks:
            tokens = block(tokens)
        out = rearrange(self.proj_out(tokens), "(b h w) t c -> (b t) c h w", h=height, w=width)
        return out + x


class TemporalConvBlock(nn.Module):
    """Four (GroupNorm, SiLU, 3x1x1 conv over time) layers with a residual: `[b, c, t, h, w]` in and out."""

    def __init__(self, channels: int) -> None:
        super().__init__()

        def layer(with_dropout_slot: bool) -> nn.Sequential:
            conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
            slot = [nn.Identity()] if with_dropout_slot else []  # dropout in training, kept for key indices
            return nn.Sequential(group_norm(channels), nn.SiLU(), *slot, conv)

        self.conv1 = layer(with_dropout_slot=False)
        self.conv2 = layer(with_dropout_slot=True)
        self.conv3 = layer(with_dropout_slot=True)
        self.conv4 = layer(with_dropout_slot=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    """Conv ResBlock with the timestep embedding added between its convs, then a temporal conv branch."""

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            group_norm(in_channels), nn.SiLU(), nn.Conv2d(in_channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, out_channels))
        self.out_layers = nn.Sequential(
            group_norm(out_channels),
            nn.SiLU(),
            nn.Identity(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )  # [2]: dropout slot
        self.skip_connection = (
            nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)
        )
        self.temporal_conv = TemporalConvBlock(out_channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        """`x [(b t), c_in, h, w]`, `emb [(b t), embed_dim]` -> `[(b t), c_out, h, w]`."""
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None].to(x.dtype)
        h = self.skip_connection(x) + self.out_layers(h)
        clip = rearrange(h, "(b t) c h w -> b c t h w", t=frames)
        return rearrange(self.temporal_conv(clip), "b c t h w -> (b t) c h w")

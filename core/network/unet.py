"""The Geo4D denoiser: DynamiCrafter's 3-D UNet, predicting v for the 16 latent channels of a window.

Layout, top to bottom: embeddings and small layers, attention, transformers, ResBlock, the UNet.
Activations inside the UNet are per-frame images `[(b t), c, h, w]`; temporal layers fold them back to
`[b, c, t, h, w]`. The cross-attention context is 77 text tokens followed by 16 image tokens per frame;
frame f attends to the text plus its own 16 image tokens, with separate key/value projections for the
image tokens (`to_k_ip`, `to_v_ip`).

Checkpoint names: `state_dict()` keys equal the published `model.diffusion_model.*` keys with that
prefix stripped and the one spelling fix of `CHECKPOINT_RENAMES` applied (checkpoint name part ->
our name part, matched on whole dot-separated parts).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from .config import GROUP_NORM_GROUPS, UNetConfig

logger = logging.getLogger(__name__)

CHECKPOINT_RENAMES: dict[str, str] = {"temopral_conv": "temporal_conv"}

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


class Stage(nn.Sequential):
    """One UNet stage: layers run in order, each given what it needs (embedding, context, frame count)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, frames)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = layer(x, frames)
            else:
                x = layer(x)
        return x


def _embedding_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))


class UNet3D(nn.Module):
    """The Geo4D UNet (`model.diffusion_model`): v-prediction for 16 modality latent channels.

    Output channels: [0:4] point map, [4:8] ray direction, [8:12] ray moment, [12:16] disparity.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        base, embed_dim = config.model_channels, config.time_embed_dim
        self.time_embed = _embedding_mlp(base, embed_dim)
        self.fps_embedding = _embedding_mlp(base, embed_dim)

        def attention_layers(channels: int) -> list[nn.Module]:
            heads = channels // config.head_channels
            return [
                SpatialTransformer(channels, config),
                TemporalTransformer(channels, heads, config.head_channels, config.transformer_depth),
            ]

        self.input_blocks = nn.ModuleList([Stage(nn.Conv2d(config.in_channels, base, 3, padding=1))])
        self.init_attn = Stage(
            TemporalTransformer(
                base,
                config.init_attn_heads,
                config.head_channels,
                config.transformer_depth,
                pointwise_conv=True,
            )
        )
        skip_channels, channels, factor = [base], base, 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(channels, mult * base, embed_dim)]
                channels = mult * base
                if factor in config.attention_resolutions:
                    layers += attention_layers(channels)
                self.input_blocks.append(Stage(*layers))
                skip_channels.append(channels)
            if level < len(config.channel_mult) - 1:
                self.input_blocks.append(Stage(Downsample(channels)))
                skip_channels.append(channels)
                factor *= 2

        self.middle_block = Stage(
            ResBlock(channels, channels, embed_dim),
            *attention_layers(channels),
            ResBlock(channels, channels, embed_dim),
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for index in range(config.num_res_blocks + 1):
                layers = [ResBlock(channels + skip_channels.pop(), mult * base, embed_dim)]
                channels = mult * base
                if factor in config.attention_resolutions:
                    layers += attention_layers(channels)
                if level > 0 and index == config.num_res_blocks:
                    layers.append(Upsample(channels))
                    factor //= 2
                self.output_blocks.append(Stage(*layers))

        self.out = nn.Sequential(
            group_norm(channels), nn.SiLU(), nn.Conv2d(base, config.out_channels, 3, padding=1)
        )

    def per_frame_context(self, context: torch.Tensor, frames: int) -> torch.Tensor:
        """`[b, 77 + 16 t, d]` (image tokens frame-major) -> `[(b t), 77 + 16, d]`: text + that frame's tokens."""
        config = self.config
        expected = config.text_tokens + config.image_tokens_per_frame * frames
        if context.ndim != 3 or context.shape[1] != expected:
            raise ValueError(
                f"context shape {tuple(context.shape)}: expected [B, {expected}, {config.context_dim}] "
                f"({config.text_tokens} text + {config.image_tokens_per_frame} image tokens x {frames} frames)"
            )
        text = repeat(context[:, : config.text_tokens], "b l d -> (b t) l d", t=frames)
        image = rearrange(context[:, config.text_tokens :], "b (t l) d -> (b t) l d", t=frames)
        return torch.cat([text, image], dim=1)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        fps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict v for one batch of windows.

        x: `[B, in_channels, T, h, w]`: 16 noisy modality latent channels, then the 4-channel VAE latent
            of each input frame. h and w are latent sizes (image / 8).
        timesteps: `[B]` integer diffusion steps in [0, 999].
        context: `[B, 77 + 16 T, context_dim]`: text tokens, then 16 image tokens per frame, frame-major.
        fps: `[B]` integer frame rates (None = `config.default_fps` for every element).
        Returns `[B, out_channels, T, h, w]` in x's dtype.
        """
        base = self.config.model_channels
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"x shape {tuple(x.shape)}: expected [B, {self.config.in_channels}, T, h, w]")
        batch, _, frames = x.shape[:3]
        if fps is None:
            fps = torch.full((batch,), self.config.default_fps, dtype=torch.long, device=x.device)
        emb = self.time_embed(sinusoidal_embedding(timesteps, base).to(x.dtype))
        emb = emb + self.fps_embedding(sinusoidal_embedding(fps, base).to(x.dtype))
        emb = repeat(emb, "b e -> (b t) e", t=frames)
        context = self.per_frame_context(context, frames).to(x.dtype)

        h = rearrange(x, "b c t h w -> (b t) c h w")
        skips = []
        for index, stage in enumerate(self.input_blocks):
            h = stage(h, emb, context, frames)
            if index == 0:
                h = self.init_attn(h, emb, context, frames)
            skips.append(h)
        h = self.middle_block(h, emb, context, frames)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, frames)
        return rearrange(self.out(h), "(b t) c h w -> b c t h w", t=frames)

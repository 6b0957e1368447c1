"""The Geo4D denoiser: DynamiCrafter's 3-D UNet assembled from its blocks, predicting v for the 16 latent
channels of a window.

The blocks (ResBlock, transformers, attention, small layers) are in core.network.unet_blocks; this module
arranges them into input, middle and output stages with skip connections and embeds timestep and fps.

Checkpoint names: `state_dict()` keys equal the published `model.diffusion_model.*` keys with that
prefix stripped and the one spelling fix of `CHECKPOINT_RENAMES` applied (checkpoint name part ->
our name part, matched on whole dot-separated parts).
"""

from __future__ import annotations

import logging

import torch
from einops import rearrange, repeat
from torch import nn

from .config import UNetConfig
from .unet_blocks import (
    Downsample,
    ResBlock,
    SpatialTransformer,
    TemporalTransformer,
    Upsample,
    group_norm,
    sinusoidal_embedding,
)

logger = logging.getLogger(__name__)

CHECKPOINT_RENAMES: dict[str, str] = {"temopral_conv": "temporal_conv"}


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

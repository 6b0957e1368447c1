"""Geo4D's VAE: diffusers' AutoencoderKL plus the decoder_adaptor uncertainty head, and LDM -> our names."""

from __future__ import annotations

import logging
import re

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from .config import VAEConfig

logger = logging.getLogger(__name__)

VAE_NORM_EPS = 1e-6  # every GroupNorm of the LDM VAE and of Geo4D's adaptors


class AdaptorResBlock(nn.Module):
    """LDM VAE ResBlock without time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), [N, C, H, W]."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels, eps=VAE_NORM_EPS)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels, eps=VAE_NORM_EPS)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class DecoderAdaptor(nn.Module):
    """Geo4D's uncertainty head on the VAE decoder's last features (before its norm_out).

    [N, adaptor_channels, H, W] features -> [N, adaptor_out_channels, H, W] raw uncertainty.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        width = config.adaptor_channels
        self.blocks = nn.ModuleList(
            AdaptorResBlock(width, config.norm_groups) for _ in range(config.adaptor_num_res_blocks + 1)
        )
        self.norm_out = nn.GroupNorm(config.norm_groups, width, eps=VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(width, config.adaptor_out_channels, 3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features
        for block in self.blocks:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def uncertainty_weight(raw: torch.Tensor) -> torch.Tensor:
    """Per-pixel confidence from the adaptor's raw output: 1 / softplus(raw), > 0, same shape."""
    return 1.0 / F.softplus(raw)


class Geo4DVAE(nn.Module):
    """diffusers' AutoencoderKL (Stable Diffusion's VAE) with optional encoder and uncertainty head.

    The main VAE encodes RGB frames and decodes ray and disparity latents (encoder, no head); the
    point-map VAE (`vae.ckpt`) only decodes, with the head (encoder=False, uncertainty=True).
    Latents here are raw VAE latents: the caller applies config.scale_factor.
    """

    def __init__(self, config: VAEConfig, encoder: bool = True, uncertainty: bool = False) -> None:
        super().__init__()
        self.config = config
        levels = len(config.channel_mult)
        self.autoencoder = AutoencoderKL(
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            block_out_channels=tuple(config.channels * mult for mult in config.channel_mult),
            layers_per_block=config.num_res_blocks,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_groups,
            scaling_factor=config.scale_factor,
            use_quant_conv=encoder,
        )
        if not encoder:
            self.autoencoder.encoder = None
        self.decoder_adaptor = DecoderAdaptor(config) if uncertainty else None

    @property
    def has_encoder(self) -> bool:
        return self.autoencoder.encoder is not None

    def encode(self, images: torch.Tensor) -> DiagonalGaussianDistribution:
        """Posterior of [N, 3, H, W] images in [-1, 1]: mean / std / logvar [N, 4, H/8, W/8]."""
        if not self.has_encoder:
            raise RuntimeError("This VAE was built without its encoder (decode-only point-map VAE).")
        return self.autoencoder.encode(images).latent_dist

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw (unscaled) latents [N, 4, h, w] -> images [N, 3, 8h, 8w]."""
        return self.autoencoder.decode(latents).sample

    def decode_with_uncertainty(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw latents [N, 4, h, w] -> (decoded [N, 3, 8h, 8w], raw uncertainty [N, 1, 8h, 8w]).

        The head reads the decoder's features just before its final GroupNorm, as Geo4D trained it.
        """
        if self.decoder_adaptor is None:
            raise RuntimeError("This VAE was built without its uncertainty head (decoder_adaptor).")
        decoder = self.autoencoder.decoder
        h = decoder.conv_in(self.autoencoder.post_quant_conv(latents))
        h = decoder.mid_block(h)
        for up_block in decoder.up_blocks:
            h = up_block(h)
        decoded = decoder.conv_out(decoder.conv_act(decoder.conv_norm_out(h)))
        return decoded, self.decoder_adaptor(h)


# LDM (CompVis) VAE names <-> diffusers AutoencoderKL names: plain substring renames, applied in this order
# from LDM to ours and in reverse order from ours to LDM. The decoder's level index is reversed first (LDM
# numbers decoder levels from the highest resolution, diffusers from the lowest).
_LDM_TO_DIFFUSERS_RENAMES: tuple[tuple[str, str], ...] = (
    ("encoder.down.", "encoder.down_blocks."),
    (".block.", ".resnets."),
    (".downsample.conv.", ".downsamplers.0.conv."),
    (".upsample.conv.", ".upsamplers.0.conv."),
    (".mid.block_1.", ".mid_block.resnets.0."),
    (".mid.block_2.", ".mid_block.resnets.1."),
    (".mid.attn_1.norm.", ".mid_block.attentions.0.group_norm."),
    (".mid.attn_1.q.", ".mid_block.attentions.0.to_q."),
    (".mid.attn_1.k.", ".mid_block.attentions.0.to_k."),
    (".mid.attn_1.v.", ".mid_block.attentions.0.to_v."),
    (".mid.attn_1.proj_out.", ".mid_block.attentions.0.to_out.0."),
    (".nin_shortcut.", ".conv_shortcut."),
    (".norm_out.", ".conv_norm_out."),
)
_AUTOENCODER = "autoencoder."
_LDM_ADAPTOR, _OUR_ADAPTOR = "decoder_adaptor.up.0.block.", "decoder_adaptor.blocks."
_AUTOENCODER_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


def _reverse_decoder_level(key: str, source: str, target: str, levels: int) -> str:
    """decoder.<source>.i. -> decoder.<target>.(levels - 1 - i)."""
    match = re.match(rf"decoder\.{source}\.(\d+)\.", key)
    if match is None:
        return key
    return f"decoder.{target}.{levels - 1 - int(match.group(1))}." + key[match.end() :]


def ldm_vae_key_to_ours(key: str, levels: int) -> str:
    """Our Geo4DVAE state_dict name for an LDM VAE key (no checkpoint prefix), for a VAE of `levels` levels.

    encoder.*, decoder.*, quant_conv.*, post_quant_conv.* go to `autoencoder.` + diffusers' name;
    decoder_adaptor.up.0.block.i.* to decoder_adaptor.blocks.i.*; other names pass through unchanged
    (the checkpoint loader reports or drops them).
    """
    if key.startswith(_LDM_ADAPTOR):
        return _OUR_ADAPTOR + key[len(_LDM_ADAPTOR) :]
    if not key.startswith(_AUTOENCODER_PARTS):
        return key
    key = _reverse_decoder_level(key, "up", "up_blocks", levels)
    for ldm, ours in _LDM_TO_DIFFUSERS_RENAMES:
        key = key.replace(ldm, ours)
    return _AUTOENCODER + key


def our_vae_key_to_ldm(key: str, levels: int) -> str:
    """The inverse of ldm_vae_key_to_ours: the LDM name of one of our Geo4DVAE state_dict names."""
    if key.startswith(_OUR_ADAPTOR):
        return _LDM_ADAPTOR + key[len(_OUR_ADAPTOR) :]
    if not key.startswith(_AUTOENCODER):
        return key
    key = key[len(_AUTOENCODER) :]
    for ldm, ours in reversed(_LDM_TO_DIFFUSERS_RENAMES):
        key = key.replace(ours, ldm)
    return _reverse_decoder_level(key, "up_blocks", "up", levels)


def ldm_vae_tensor_to_ours(our_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """LDM's mid-block attention uses 1x1 convolutions ([C, C, 1, 1]); diffusers linear layers ([C, C])."""
    if ".mid_block.attentions.0." in our_key and our_key.endswith(".weight") and tensor.ndim == 4:
        return tensor[:, :, 0, 0]
    return tensor


def our_vae_tensor_to_ldm(our_key: str, tensor: torch.Tensor) -> torch.Tensor:
    """The inverse of ldm_vae_tensor_to_ours: attention projections back to [C, C, 1, 1]."""
    if ".mid_block.attentions.0." in our_key and our_key.endswith(".weight") and tensor.ndim == 2:
        return tensor[:, :, None, None]
    return tensor

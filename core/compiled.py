"""The network's parts through torch.compile, for a reconstruction that asks for it (opt-in: see docs/speed.md)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from .model.vae import Geo4DVAE

logger = logging.getLogger(__name__)


class CompiledVAE:
    """A Geo4DVAE's encode, decode and decode_with_uncertainty through torch.compile: the same weights and
    calls, compiled on first use for each input shape (the VAE itself is left as it was)."""

    def __init__(self, vae: Geo4DVAE) -> None:
        self.config = vae.config
        self.encode = torch.compile(vae.encode) if vae.has_encoder else vae.encode
        self.decode = torch.compile(vae.decode)
        self.decode_with_uncertainty = (
            torch.compile(vae.decode_with_uncertainty)
            if vae.decoder_adaptor is not None
            else vae.decode_with_uncertainty
        )


def compiled_parts(
    unet: nn.Module, vae: Geo4DVAE, pointmap_vae: Geo4DVAE
) -> tuple[nn.Module, CompiledVAE, CompiledVAE]:
    """The UNet and both VAEs compiled (torch's default inductor backend); the first calls take minutes."""
    logger.info("Compiling the UNet and the VAEs with torch.compile; the first windows run slower.")
    return torch.compile(unet), CompiledVAE(vae), CompiledVAE(pointmap_vae)

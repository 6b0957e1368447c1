"""The network's parts through torch.compile, for a reconstruction that asks for it (opt-in: see docs/speed.md)."""

from __future__ import annotations

import logging

import torch

from .vae import Geo4DVAE
from .window_pipeline import WindowPipeline

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


def compiled_pipeline(model: WindowPipeline) -> WindowPipeline:
    """`model` with its UNet and both VAEs compiled (torch's default inductor backend), sharing its weights
    and context; the first calls take minutes."""
    logger.info("Compiling the UNet and the VAEs with torch.compile; the first windows run slower.")
    compiled = WindowPipeline(
        model.config,
        torch.compile(model.unet),
        CompiledVAE(model.vae),
        CompiledVAE(model.pointmap_vae),
        model.context,
    )
    compiled.source = model.source
    return compiled

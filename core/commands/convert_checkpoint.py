"""`python -m geo4d convert-checkpoint`: the published model.ckpt + vae.ckpt into our one safetensors file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

NAME = "convert-checkpoint"
HELP = (
    "convert the published Geo4D model.ckpt and vae.ckpt into one .safetensors file (UNet, both VAEs, "
    "precomputed context; no CLIP towers needed to load it)"
)
DTYPE_NAMES = ("bf16", "fp16", "fp32")

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="the published Geo4D model.ckpt")
    parser.add_argument("vae", help="the published point-map VAE, vae.ckpt")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="the .safetensors file to write (an earlier one of ours is replaced, any other file refused)",
    )
    parser.add_argument(
        "--dtype", choices=DTYPE_NAMES, default="bf16", help="precision of the stored weights (default bf16)"
    )
    parser.add_argument(
        "--preset",
        choices=("full", "tiny"),
        default="full",
        help="network configuration of the input files: full = the published model (default)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import Geo4DError
    from ..network.checkpoint import INFERENCE_PARTS, load_published
    from ..network.config import NetworkConfig
    from ..network.loading import published_context
    from ..network.network_file import NETWORK_KIND, is_network_file, write_network_file
    from ..output_folder import check_output_file

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise Geo4DError(f"Output {output} must end in .safetensors.")
    if not output.parent.is_dir():
        raise Geo4DError(f"Output folder {output.parent} does not exist; create it first.")
    inputs = (args.model, args.vae)
    check_output_file(output, is_network_file, NETWORK_KIND, inputs)  # before the long conversion
    config = NetworkConfig.preset(args.preset)
    logger.info("Computing the constant context from the CLIP towers of %s", args.model)
    context = published_context(args.model, config)
    modules = load_published(args.model, args.vae, config, INFERENCE_PARTS, "cpu", torch.float32)
    write_network_file(output, modules, context, config, dtypes[args.dtype], inputs)
    counts = ", ".join(
        f"{part} {sum(p.numel() for p in module.parameters()) / 1e6:.1f} M"
        for part, module in modules.items()
    )
    logger.info("Wrote %s (%.1f MB, %s): %s", output, output.stat().st_size / 1e6, args.dtype, counts)
    return 0

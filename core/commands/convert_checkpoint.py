"""`python -m geo4d convert-checkpoint`: the published model.ckpt + vae.ckpt into our one safetensors file."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

NAME = "convert-checkpoint"
HELP = (
    "convert the published Geo4D model.ckpt and vae.ckpt into one .safetensors file (UNet, both VAEs, "
    "precomputed context; no CLIP towers needed to load it)"
)
DTYPE_NAMES = ("bf16", "fp16", "fp32")
# The steps convert() reports: the CLIP context, reading the weights, writing the file.
CONVERT_STEPS = 3

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
    convert(args.model, args.vae, Path(args.output), args.dtype, args.preset)
    return 0


def convert(
    model: str,
    vae: str,
    output: Path,
    dtype: str = "bf16",
    preset: str = "full",
    progress: Callable[[int, str], None] | None = None,
) -> dict:
    """Convert `model` + `vae` into `output`; progress(done of CONVERT_STEPS, message) before each step.

    Returns what the worker's "convert" job reports: the output, its size in bytes, parameters per part.
    """
    import torch

    from ..errors import Geo4DError
    from ..network.checkpoint import INFERENCE_PARTS, load_published
    from ..network.config import NetworkConfig
    from ..network.loading import published_context
    from ..network.network_file import NETWORK_KIND, is_network_file, write_network_file
    from ..output_folder import check_output_file

    report = progress or (lambda done, message: logger.info("%s", message))
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if output.suffix != ".safetensors":
        raise Geo4DError(f"Output {output} must end in .safetensors.")
    if not output.parent.is_dir():
        raise Geo4DError(f"Output folder {output.parent} does not exist; create it first.")
    inputs = (model, vae)
    check_output_file(output, is_network_file, NETWORK_KIND, inputs)  # before the long conversion
    config = NetworkConfig.preset(preset)
    report(0, f"Computing the constant context from the CLIP towers of {model}")
    context = published_context(model, config)
    report(1, f"Reading the weights of {model} and {vae}")
    modules = load_published(model, vae, config, INFERENCE_PARTS, "cpu", torch.float32)
    report(2, f"Writing {output}")
    write_network_file(output, modules, context, config, dtypes[dtype], inputs)
    parameters = {part: sum(p.numel() for p in module.parameters()) for part, module in modules.items()}
    counts = ", ".join(f"{part} {count / 1e6:.1f} M" for part, count in parameters.items())
    logger.info("Wrote %s (%.1f MB, %s): %s", output, output.stat().st_size / 1e6, dtype, counts)
    return {"output": str(output), "bytes": output.stat().st_size, "parameters": parameters}

"""`python -m geo4d train`: reproduce the embedded `tiny` model (data generation included) with one command."""

from __future__ import annotations

import argparse
import sys

from ..settings import DEVICES

NAME = "train"
HELP = "train the embedded tiny model on synthetic scenes: DIR/geo4d-tiny.safetensors and its loss log"

# Training is a job of its own: torch's OpenMP threads keep spinning between operations (the libgomp
# default), which made a UNet step 0.65 s instead of 1.07 s with passive waiting on 2 idle cores.
# On a machine where other work holds a core, --threads 1 avoids the spinning altogether.
SHARES_CPU = False

OVERRIDES = ("scenes", "vae_steps", "unet_steps", "pointmap_steps", "seed", "render_workers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="folder for the data cache, logs and weights: new, empty, or an earlier training folder holding nothing else",
    )
    parser.add_argument(
        "--preset",
        choices=("shipped", "small", "toy"),
        default="shipped",
        help="shipped: the recipe of core/weights/geo4d-tiny.safetensors (default); small: a wider 256x128 "
        "network for one GPU (see docs/speed.md); toy: a one-minute check",
    )
    for name in OVERRIDES:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"override the preset's {name}")
    parser.add_argument("--device", choices=DEVICES, default=DEVICES[0], help=f"default: {DEVICES[0]}")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy machine)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..output_folder import check_output_folder
    from ..train.config import TRAINING_LAYOUT

    check_output_folder(args.output, TRAINING_LAYOUT)  # before torch starts: a refusal is instant
    import torch

    from ..errors import Geo4DError
    from ..progress import ProgressEvent
    from ..train.config import TrainConfig
    from ..train.recipe import run_training

    overrides = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    try:
        config = replace(TrainConfig.preset(args.preset), **overrides)
    except ValueError as error:
        raise Geo4DError(f"{error}. Change the option.") from error
    if args.threads is not None:
        if args.threads < 1:
            raise Geo4DError(f"--threads {args.threads}: give 1 or more threads.")
        torch.set_num_threads(args.threads)

    def show(event: ProgressEvent) -> None:
        if event.done == event.total or event.done % 10 == 0:
            end = "\n" if event.done == event.total else ""
            print(
                f"\r{event.stage}: {event.done}/{event.total}, {event.elapsed:.0f} s",
                end=end,
                file=sys.stderr,
            )

    weights = run_training(args.output, config, device=args.device, progress=show)
    print(f"{weights}: copy it to core/weights/ to ship it (the loss log and summary are beside it)")
    return 0

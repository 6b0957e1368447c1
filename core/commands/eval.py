"""`python -m geo4d eval --dataset NAME --root PATH -o REPORT`: the paper's benchmark tables for a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import options_named
from .reconstruct import SAMPLING_OPTIONS, ProgressBar, add_sampling_arguments, settings_from

NAME = "eval"
HELP = (
    "evaluate a model on a benchmark dataset (Sintel, Bonn, KITTI, TUM, ScanNet) by the paper's protocol; "
    "writes results.json and results.md, and resumes from the sequences already reconstructed"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, help="sintel, bonn, kitti, tum or scannet (README, Evaluation)"
    )
    parser.add_argument("--root", type=Path, required=True, help="the dataset's folder as distributed")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="report folder (a rerun into it resumes)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", default="tiny", help="a built-in model (default 'tiny')")
    which.add_argument(
        "--checkpoint", help="weights file instead: a .safetensors, or the published model.ckpt"
    )
    parser.add_argument(
        "--task", choices=("depth", "pose"), default=None, help="default: the dataset's first task"
    )
    parser.add_argument(
        "--sequences",
        "--subset",
        nargs="+",
        default=None,
        help="only these sequences (default: the protocol's)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N sequences (a quick look)")
    add_sampling_arguments(
        parser, size_help="force the network input WIDTHxHEIGHT (default: the dataset's protocol size)"
    )


def run(args: argparse.Namespace) -> int:
    from ..evaluation.protocol import RESULTS_MD, evaluate

    settings = settings_from(args)
    bar = ProgressBar()
    try:
        with options_named(SAMPLING_OPTIONS):  # the checks against the loaded model (--stride)
            evaluate(
                args.dataset,
                args.root,
                args.output,
                args.checkpoint or args.model,
                settings,
                args.task,
                args.sequences,
                args.limit,
                progress=bar,
            )
    finally:
        bar.close()
    print((args.output / RESULTS_MD).read_text())
    return 0

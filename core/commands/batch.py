"""`python -m geo4d batch SHOTS -o DIR --ray ADDRESS`: many videos as one Ray job, one result folder per shot."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..cli import options_named
from ..errors import Geo4DError
from .reconstruct import (
    OPTIONS,
    ProgressBar,
    add_model_arguments,
    add_ray_arguments,
    add_setting_arguments,
    settings_from,
)

NAME = "batch"
# The reconstruct command's settings but the frame range, which each shot has its own of (a strip's, or all).
BATCH_OPTIONS = {name: option for name, option in OPTIONS.items() if name not in ("start", "end")}
HELP = (
    "reconstruct many videos (a folder, a list file or a .blend's movie strips) on a Ray cluster, "
    "one result folder per shot"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "shots",
        type=Path,
        help="a folder of videos, a text file with one video path a line, or a .blend (its movie strips)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="folder that receives one result folder per shot, named after the video (or strip)",
    )
    add_model_arguments(parser)
    add_setting_arguments(parser, BATCH_OPTIONS, {})
    add_ray_arguments(parser, default="local")


def summary_table(outcomes) -> str:
    """One row per shot: name, frames, focal in pixels, seconds, warnings, and the failure if any."""
    rows = [("shot", "frames", "focal px", "seconds", "warnings", "result")]
    for outcome in outcomes:
        focal = "-" if outcome.focal_px is None else f"{outcome.focal_px:.1f}"
        result = str(outcome.folder) if outcome.failure is None else f"FAILED: {outcome.failure}"
        rows.append(
            (
                outcome.shot.name,
                str(outcome.frames) if outcome.failure is None else "-",
                focal,
                f"{outcome.seconds:.1f}",
                str(len(outcome.warnings)),
                result,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
        for row in rows
    )


def run(args: argparse.Namespace) -> int:
    from ..distributed.actors import import_ray
    from ..distributed.driver import check_actor_count, run_shots
    from ..distributed.shots import list_shots

    import_ray()  # a missing Ray is said before any work
    check_actor_count(args.ray_actors)
    shots = list_shots(args.shots, args.output)
    settings = settings_from(args, BATCH_OPTIONS)
    if os.path.lexists(args.output) and not args.output.is_dir():
        raise Geo4DError(f"-o {args.output} is a file, not a folder. Choose a folder for the results.")
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Geo4DError(
            f"Cannot make the folder {args.output}: {error.strerror}. Choose a writable folder."
        ) from error
    started = time.perf_counter()
    bar = ProgressBar()
    try:
        with options_named(BATCH_OPTIONS):
            outcomes = run_shots(
                args.ray, args.checkpoint or args.model, settings, shots, args.ray_actors, progress=bar
            )
    finally:
        bar.close()
    failed = sum(outcome.failure is not None for outcome in outcomes)
    print(summary_table(outcomes))
    print(
        f"{len(outcomes) - failed} of {len(outcomes)} shots written to {args.output} "
        f"in {time.perf_counter() - started:.1f} s" + (f"; {failed} failed" if failed else "")
    )
    return 1 if failed else 0

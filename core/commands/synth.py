"""`python -m geo4d synth`: render a synthetic dynamic scene into video.mp4 plus its exact ground truth."""

from __future__ import annotations

import argparse
import sys

from ..cli import options_named, size_argument

NAME = "synth"
HELP = "render a synthetic dynamic scene: DIR/video.mp4 and its exact ground-truth reconstruction"
# SceneConfig fields -> the options that set them.
OPTIONS = {
    "frames": "--frames",
    "width": "--size (width)",
    "height": "--size (height)",
    "seed": "--seed",
    "fps": "--fps",
    "motion": "--motion",
    "movers": "--movers",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="result folder to write: new, empty, or an earlier result holding nothing else (replaced)",
    )
    parser.add_argument("--frames", type=int, default=48, help="number of frames (default 48)")
    parser.add_argument(
        "--size", type=size_argument, default=(512, 320), help="WIDTHxHEIGHT (default 512x320)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="scene seed: layout, textures, motion, focal (default 0)"
    )
    parser.add_argument("--fps", type=float, default=24.0, help="frame rate of the video (default 24)")
    parser.add_argument(
        "--motion",
        choices=("orbit", "handheld"),
        default="orbit",
        help="camera motion: a smooth orbit (default) or a fast handheld walk with pans and shake",
    )
    parser.add_argument(
        "--movers",
        type=int,
        default=0,
        help="extra large moving spheres, for scenes where much of the image moves (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import Geo4DError
    from ..progress import ProgressEvent
    from ..synthetic.render import SceneConfig, write_synthetic

    width, height = args.size
    with options_named(OPTIONS):
        config = SceneConfig(
            frames=args.frames,
            width=width,
            height=height,
            seed=args.seed,
            fps=args.fps,
            motion=args.motion,
            movers=args.movers,
        )

    def show(event: ProgressEvent) -> None:
        end = "\n" if event.done == event.total else ""
        print(
            f"\r{event.stage}: {event.done}/{event.total} frames, {event.elapsed:.1f} s",
            end=end,
            file=sys.stderr,
        )

    try:
        folder = write_synthetic(args.output, config, progress=show)
    except MemoryError as error:
        raise Geo4DError(
            f"Out of memory while rendering {config.frames} frames of {width}x{height}. "
            "Use fewer --frames or a smaller --size."
        ) from error
    print(
        f"{folder}: {config.frames} frames of {width}x{height}, seed {config.seed}, {config.motion} camera, "
        f"{config.movers} extra movers (video.mp4 + ground truth)"
    )
    return 0

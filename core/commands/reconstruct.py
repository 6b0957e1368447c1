"""`python -m geo4d reconstruct VIDEO -o RESULT`: a video into a result folder, with a progress bar and a summary."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..cli import options_named, size_argument
from ..limits import MAX_COUNT
from ..progress import ProgressEvent
from ..settings import CHOICE, INTEGER, SIZE, SWITCH, default_of, spec_of

NAME = "reconstruct"
HELP = "reconstruct a video into a result folder (cameras, focal, per-frame depth and coloured points)"
BAR_WIDTH = 28
# Without a terminal (a log file), a progress line at least this often, in seconds, besides one per tenth.
LOG_INTERVAL = 5.0
# ReconstructionSettings fields -> the options that set them: add_sampling_arguments', then this command's.
SAMPLING_OPTIONS = {
    "stride": "--stride",
    "steps": "--steps",
    "device": "--device",
    "precision": "--precision",
    "seed": "--seed",
    "size": "--size",
}
OPTIONS = {
    **SAMPLING_OPTIONS,
    "start": "--start",
    "end": "--end",
    "max_points_per_frame": "--max-points",
    "min_confidence": "--min-confidence",
    "window_batch": "--window-batch",
    "decode_batch": "--decode-batch",
    "points": "--points",
    "compile": "--compile",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="the video file (any format PyAV/FFmpeg reads)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="result folder to write: new, empty, or an earlier result holding nothing else (replaced); "
        "see docs/output-folders.md",
    )
    add_model_arguments(parser)
    add_setting_arguments(parser, OPTIONS, {})
    add_ray_arguments(parser, default=None)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model or --checkpoint: which model runs, shared with the batch command."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--model", default="tiny", help="a built-in model: 'tiny' (default; trained on synthetic scenes only)"
    )
    which.add_argument(
        "--checkpoint",
        help="weights file instead: a .safetensors from convert-checkpoint, or the published model.ckpt "
        "(vae.ckpt beside it, or give 'model.ckpt,vae.ckpt')",
    )


def add_ray_arguments(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--ray and --ray-actors: where the windows run, not what they give, so no ReconstructionSettings field
    (docs/distributed.md)."""
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=default,
        help="run the windows on Ray actors: 'auto' (the running cluster), 'local' (start one here) or a "
        f"cluster address; needs `pip install 'geo4d[ray]'`{f' (default {default})' if default else ''}",
    )
    parser.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        metavar="N",
        help="with --ray: copies of the model (default: one per GPU of the cluster, else one per 4 CPUs)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser, size_help: str) -> None:
    """The options of how windows are sampled, shared by every command that reconstructs."""
    add_setting_arguments(parser, SAMPLING_OPTIONS, {"size": size_help})


def add_setting_arguments(
    parser: argparse.ArgumentParser, options: dict[str, str], help_texts: dict[str, str]
) -> None:
    """One option per ReconstructionSettings field in `options` (field -> option), its type, choices, default
    and help from the field's SettingSpec (help_texts: a command's own help for a field, in full). The
    option's value is stored under the field's name; ranges are checked when the settings are built (so that
    a refusal names the option, exit status 1)."""
    for name, option in options.items():
        spec, default = spec_of(name), default_of(name)
        if spec.kind == CHOICE:
            kind = {"choices": spec.names}
        elif spec.kind == SIZE:
            kind = {"type": size_argument, "metavar": "WIDTHxHEIGHT"}
        elif spec.kind == SWITCH:
            kind = {"action": "store_true"}
        else:
            kind = {
                "type": int if spec.kind == INTEGER else float,
                "metavar": option[2:].replace("-", "_").upper(),
            }
        limits = f", {spec.allowed}" if spec.kind == INTEGER and spec.high < MAX_COUNT else ""
        said = spec.none_means if default is None else default
        help_text = help_texts.get(name, f"{spec.help}{limits} (default: {said})")
        parser.add_argument(option, dest=name, default=default, help=help_text, **kind)


class ProgressBar:
    """A one-line progress bar per stage on a terminal; remembers when each stage started and ended.

    Elsewhere (a log file) it writes a line per tenth of a stage, and at least every LOG_INTERVAL seconds
    while a stage runs, so that long steps show life. `clock` gives seconds (time.monotonic by default).
    """

    def __init__(self, stream: TextIO = sys.stderr, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.stage: str | None = None
        self.spans: dict[str, list[float]] = {}
        self.interactive = stream.isatty()
        self.last_line = ""
        self.last_tenth = -1
        self.last_written = -float("inf")

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        if event.stage != self.stage:
            if self.stage is not None:
                self._finish_line()
            self.stage = event.stage
            self.spans.setdefault(event.stage, [now, now])
        self.spans[event.stage][1] = now
        filled = round(BAR_WIDTH * min(max(event.fraction, 0.0), 1.0))
        remaining = event.remaining
        eta = f", {remaining:5.0f} s left" if remaining is not None and event.done < event.total else ""
        line = (
            f"{event.stage:8s} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {event.done}/{event.total} "
            f"{event.elapsed:6.1f} s{eta}  {event.message}"
        )[:110]
        if self.interactive:
            self.stream.write("\r" + line.ljust(len(self.last_line)))
        elif int(10 * event.fraction) != self.last_tenth or now - self.last_written >= LOG_INTERVAL:
            self.stream.write(line + "\n")
            self.last_tenth = int(10 * event.fraction)
            self.last_written = now
        self.last_line = line
        self.stream.flush()

    def _finish_line(self) -> None:
        if self.interactive:
            self.stream.write("\n")
        self.last_line = ""
        self.last_tenth = -1

    def close(self) -> None:
        if self.stage is not None:
            self._finish_line()
            self.stage = None

    def seconds(self, stage: str) -> float | None:
        span = self.spans.get(stage)
        return None if span is None else span[1] - span[0]


def summary(folder: Path, bar: ProgressBar, wall_seconds: float) -> str:
    """The one-screen report of a written result: frames, focal, path length, stage times, the cameras'
    confidence, warnings."""
    import numpy as np

    from ..align.trust import LOW_CONFIDENCE
    from ..camera import lens_from_focal
    from ..evaluation.metrics import path_length
    from ..result import read_description

    description = read_description(folder)
    width, height = description.width, description.height
    focal = description.intrinsics.fx
    source = description.source_frames
    timings = description.timings
    stage_times = [
        f"{stage} {timings[f'{stage}_s']:.1f} s"
        for stage in ("load", "decode", "predict", "align", "motion")
        if f"{stage}_s" in timings
    ]
    save_seconds = bar.seconds("save")
    if save_seconds is not None:
        stage_times.append(f"save {save_seconds:.1f} s")
    settings = description.settings
    lines = [
        f"Result: {folder}",
        f"  frames     {len(source)} (source frames {source[0]}-{source[-1]}) at {width}x{height}, "
        f"{settings.get('windows', '?')} windows of {settings.get('sampling_steps', '?')} DDIM steps, "
        f"{description.fps:.3g} fps",
        f"  focal      {focal:.1f} px = {focal / max(width, height):.3f} x the long side "
        f"({lens_from_focal(focal, width, height, 36.0):.1f} mm on a 36 mm sensor)",
        f"  path       {path_length(description.camera_to_world):.3f} (scene units: median depth = 1)",
        f"  model      {settings.get('model')} on {settings.get('device')} ({settings.get('dtype')})",
        f"  times      {', '.join(stage_times)}; total {wall_seconds:.1f} s",
    ]
    confidence = description.frame_confidence
    if confidence is not None:
        low = sum(value < LOW_CONFIDENCE for value in confidence)
        lines.append(
            f"  confidence {min(confidence):.2f} lowest (frame {int(np.argmin(confidence))}), "
            f"{np.mean(confidence):.2f} mean; {low} frame{'s' if low != 1 else ''} under {LOW_CONFIDENCE}"
        )
    if description.split:
        lines.append(
            f"  points     split: static.ply holds {description.motion.static_points} static points; "
            "the frames hold the moving ones"
        )
    warnings = description.warnings
    lines.append(f"  warnings   {len(warnings) or 'none'}")
    lines += [f"    - {warning}" for warning in warnings[:8]]
    if len(warnings) > 8:
        lines.append(f"    ... and {len(warnings) - 8} more in reconstruction.json")
    return "\n".join(lines)


def settings_from(args: argparse.Namespace, options: dict[str, str] = SAMPLING_OPTIONS):
    """ReconstructionSettings from the parsed `options` (add_setting_arguments'); a bad value is a Geo4DError
    naming the option."""
    from ..settings import ReconstructionSettings

    with options_named(options):
        return ReconstructionSettings(**{name: getattr(args, name) for name in options})


def run(args: argparse.Namespace) -> int:
    from ..output_folder import check_result_folder

    model = args.checkpoint or args.model
    check_result_folder(args.output, args.video, model)  # before torch starts: a refusal is instant
    if args.ray:
        from functools import partial

        from ..distributed.actors import import_ray
        from ..distributed.driver import check_actor_count, reconstruct_to_folder_on_ray

        import_ray()  # a missing Ray is said before any work
        check_actor_count(args.ray_actors)
        reconstruct_to_folder = partial(
            reconstruct_to_folder_on_ray, address=args.ray, actors=args.ray_actors
        )
    else:
        from ..reconstruction import reconstruct_to_folder

    settings = settings_from(args, OPTIONS)
    started = time.perf_counter()
    bar = ProgressBar()
    try:
        with options_named(OPTIONS):  # the checks against the loaded model (--stride)
            folder = reconstruct_to_folder(args.video, args.output, model, settings, progress=bar)
    finally:
        bar.close()
    print(summary(folder, bar, time.perf_counter() - started))
    return 0

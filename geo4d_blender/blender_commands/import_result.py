"""`python -m geo4d import RESULT -o scene.blend`: write a .blend with a result's camera and point cloud."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..blend_files import is_blend_file, save_as_partial
from ..core.cli import options_named
from ..core.errors import Geo4DError
from ..core.output_folder import check_output_file, write_file

NAME = "import"
HELP = "Import a reconstruction folder into a new .blend: a keyed camera and an animated point cloud."

logger = logging.getLogger(__name__)

# ImportOptions fields -> the options that set them.
OPTIONS = {
    "frame_start": "--frame-start",
    "storage": "--storage",
    "point_size": "--point-size",
    "points": "--points",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="the result folder (the one holding reconstruction.json)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="the .blend to write (a new file, unless --overwrite)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing Blender file; the earlier one is kept as NAME.blend1, as Blender does",
    )
    parser.add_argument("--frame-start", type=int, default=1, help="timeline frame of the first result frame")
    parser.add_argument(
        "--storage",
        choices=("streamed", "packed"),
        default="streamed",
        help="streamed: points read from the result's PLY files (paths relative to the .blend); "
        "packed: every point stored in the .blend",
    )
    parser.add_argument("--point-size", type=float, default=1.0, help="point diameter in footage pixels")
    parser.add_argument(
        "--points",
        choices=("full", "split"),
        default="full",
        help="full: one animated cloud of the frame files; split: the static cloud as a 'Set' object beside "
        "an animated 'Moving' object (results reconstructed with --points split)",
    )


def backup_path(output: Path) -> Path:
    """Where Blender keeps the previous version of a saved file: NAME.blend1 beside it."""
    return output.with_name(output.name + "1")


def check_output(output: Path, result: Path, overwrite: bool) -> Path:
    """The absolute .blend path to write, refused before any work when writing it could lose a file: an
    existing file without --overwrite, a file that is not a Blender file, the result folder or a file in it."""
    output = Path(os.path.abspath(output))  # not resolved: a link as the output is refused, not followed
    if output.is_dir():
        raise Geo4DError(f"-o {output} is a folder. Give a .blend file name.")
    if output.suffix != ".blend":
        raise Geo4DError(f"-o {output} does not end in .blend. Give the output a .blend name.")
    if not output.parent.is_dir():
        raise Geo4DError(f"The folder {output.parent} does not exist. Create it or choose another output.")
    if os.path.lexists(output) and not overwrite:
        raise Geo4DError(
            f"-o {output} exists; Geo4D does not replace a file unless --overwrite is given (the earlier file "
            f"is then kept as {backup_path(output).name}). Choose a new name, or add --overwrite."
        )
    for path in (output, backup_path(output)):
        check_output_file(path, None, "Blender file", [result])
        if path.exists() and not is_blend_file(path):
            raise Geo4DError(
                f"{path} exists and is not a Blender file; Geo4D never overwrites it. Choose a new name, or move that file."
            )
    if not os.access(output.parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise Geo4DError(f"Cannot write {output}: permission denied. Choose a writable location.")
    return output


def save_blend(output: Path) -> None:
    """Save the open file as `output`: written beside it under a hidden name, checked complete and renamed
    over it, an earlier file kept as NAME.blend1 (so a failure never leaves a half-written .blend and
    nothing is lost)."""
    write_file(
        output,
        lambda partial: save_as_partial(partial, output),
        is_blend_file,
        "Blender file",
        backup=backup_path(output),
    )


def run(args: argparse.Namespace) -> int:
    import bpy

    from ..import_options import ImportOptions
    from ..scene_builder import import_result

    output = check_output(args.output, args.result, args.overwrite)
    with options_named(OPTIONS):
        options = ImportOptions(
            frame_start=args.frame_start,
            storage=args.storage.upper(),
            point_size=args.point_size,
            relative_to=str(output.parent),
            points=args.points.upper(),
        )
    bpy.ops.wm.read_factory_settings(use_empty=True)
    imported = import_result(args.result, options)
    save_blend(output)
    scene = bpy.context.scene
    static = "" if imported.static is None else f", set '{imported.static.name}'"
    print(
        f"Wrote {output}: frames {scene.frame_start}-{scene.frame_end}, camera '{imported.camera.name}', "
        f"points '{imported.points.name}' ({args.storage}){static}."
    )
    for warning in imported.warnings:
        print(f"geo4d: warning: {warning}", file=sys.stderr)
    return 0

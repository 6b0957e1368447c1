"""`python -m geo4d import RESULT -o scene.blend`: write a .blend with a result's camera and point cloud."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..core.cli import options_named
from ..core.errors import Geo4DError

NAME = "import"
HELP = "Import a reconstruction folder into a new .blend: a keyed camera and an animated point cloud."

logger = logging.getLogger(__name__)

# ImportOptions fields -> the options that set them.
OPTIONS = {"frame_start": "--frame-start", "storage": "--storage", "point_size": "--point-size"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="the result folder (the one holding reconstruction.json)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="the .blend to write (replaced if present)"
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


def check_output(output: Path) -> Path:
    """The absolute .blend path to write, refused early when it cannot be written."""
    output = output.resolve()
    if output.suffix != ".blend":
        raise Geo4DError(f"{output} does not end in .blend. Give the output a .blend name.")
    if output.is_dir():
        raise Geo4DError(f"{output} is a folder. Give a .blend file name.")
    if not output.parent.is_dir():
        raise Geo4DError(f"The folder {output.parent} does not exist. Create it or choose another output.")
    if not os.access(output.parent, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise Geo4DError(f"Cannot write {output}: permission denied. Choose a writable location.")
    return output


def run(args: argparse.Namespace) -> int:
    import bpy

    from ..import_options import ImportOptions
    from ..scene_builder import import_result

    output = check_output(args.output)
    with options_named(OPTIONS):
        options = ImportOptions(
            frame_start=args.frame_start,
            storage=args.storage.upper(),
            point_size=args.point_size,
            relative_to=str(output.parent),
        )
    bpy.ops.wm.read_factory_settings(use_empty=True)
    imported = import_result(args.result, options)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(output), relative_remap=False)
    except RuntimeError as error:
        raise Geo4DError(f"Blender could not save {output}: {error}") from error
    scene = bpy.context.scene
    print(
        f"Wrote {output}: frames {scene.frame_start}-{scene.frame_end}, camera '{imported.camera.name}', "
        f"points '{imported.points.name}' ({args.storage})."
    )
    return 0

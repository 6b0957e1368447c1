"""`python -m geo4d.blend_shots FILE.blend`: print the .blend's movie strips as JSON for the batch command.

Run in a child process by core.distributed.shots (core never imports bpy): one [strip name, movie path,
first movie frame, movie frame after the last] per movie strip of every scene, over the strip's visible
frames. A strip that cannot be reconstructed (retimed, missing movie) is left out with a warning on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import bpy

from .blender_compat import all_strips
from .core.errors import Geo4DError
from .strips import read_strip

logger = logging.getLogger(__name__)


def movie_strips(path: str) -> list[list]:
    bpy.ops.wm.open_mainfile(filepath=path)
    found = []
    for scene in bpy.data.scenes:
        if scene.sequence_editor is None:
            continue
        for strip in all_strips(scene.sequence_editor):
            if strip.type != "MOVIE":
                continue
            try:
                frames = read_strip(scene, strip)
            except Geo4DError as error:
                logger.warning("Leaving out the strip '%s' of scene '%s': %s", strip.name, scene.name, error)
                continue
            found.append([strip.name, str(frames.video), frames.movie_start, frames.movie_end])
    return found


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    result = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # Blender's own messages stay off the JSON
    strips = movie_strips(sys.argv[1])
    result.write(json.dumps(strips) + "\n")
    result.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scenes with real movie strips for the reconstruct-strip tests: synthetic H.264 clips added to the Sequencer."""

from __future__ import annotations

from pathlib import Path

import bpy

from geo4d.blender_compat import top_level_strips
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic
from geo4d.owned_data import OWNED_KINDS

# Timeline frame at which the test strips start (movie frame 0 shows there).
STRIP_START = 10


def write_clip(folder: Path, frames: int = 20, width: int = 64, height: int = 40, fps: float = 24.0) -> Path:
    """A synthetic clip (with its ground-truth result beside it); returns the video's path."""
    write_synthetic(folder, SceneConfig(frames=frames, width=width, height=height, seed=3, fps=fps))
    return folder / VIDEO_NAME


def add_movie_strip(
    scene: bpy.types.Scene, video: Path, name: str = "shot", frame_start: int = STRIP_START, channel: int = 1
) -> bpy.types.Strip:
    """A movie strip of `video` at `frame_start`, made the active strip of the scene."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strip = top_level_strips(editor).new_movie(name, str(video), channel=channel, frame_start=frame_start)
    editor.active_strip = strip
    return strip


def collection_names() -> dict[str, list[str]]:
    """Names of every data-block of the kinds an import creates, to compare a scene before and after."""
    return {kind: sorted(block.name for block in getattr(bpy.data, kind)) for kind in OWNED_KINDS}

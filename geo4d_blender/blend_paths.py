"""File paths as the .blend stores them: relative to the .blend ("//...") where its folder is known."""

from __future__ import annotations

import os
from pathlib import Path

import bpy


def blend_path(path: Path, relative_to: str | None) -> str:
    """`path` relative to the folder `relative_to`, else to the saved .blend, else absolute.

    Relative paths use "/" and start with "//", as Blender expects; a path on another drive stays absolute.
    """
    base = relative_to if relative_to is not None else (os.path.dirname(bpy.data.filepath) or None)
    if base is None:
        return str(path)
    try:
        relative = os.path.relpath(path, base)
    except ValueError:
        return str(path)
    return "//" + Path(relative).as_posix()


def blend_folder_path(folder: Path, relative_to: str | None) -> str:
    """Like blend_path for a folder, ending in "/" so that file names can be appended."""
    stored = blend_path(folder, relative_to)
    if stored == "//.":
        return "//"
    return stored.rstrip("/") + "/"

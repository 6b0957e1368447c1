"""On save, store the paths of our imports relative to the .blend, as Blender does for its own files.

An import into an unsaved file cannot know where the .blend will live, so it stores absolute paths;
this save_pre handler rewrites them ("//...") once the .blend's path is known, when the preference
"Default to relative paths" is on. Paths on another drive stay absolute.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import bpy

from .blend_paths import blend_folder_path, blend_path
from .owned_data import RESULT_TAG, ROLE_TAG
from .point_cloud_builder import FRAMES_MODIFIER

logger = logging.getLogger(__name__)


def _is_absolute(path: object) -> bool:
    return isinstance(path, str) and not path.startswith("//") and os.path.isabs(path)


def store_paths_relative(blend_filepath: str) -> int:
    """Rewrite absolute streamed-frame folders and footage paths of our imports; returns how many changed."""
    base = os.path.dirname(blend_filepath)
    changed = 0
    for obj in bpy.data.objects:
        modifier = obj.modifiers.get(FRAMES_MODIFIER) if obj.get(ROLE_TAG) == "points" else None
        if obj.library is not None or modifier is None or modifier.node_group is None:
            continue
        for item in modifier.node_group.interface.items_tree:
            if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == "Folder":
                if _is_absolute(modifier.get(item.identifier)):
                    modifier[item.identifier] = blend_folder_path(Path(modifier[item.identifier]), base)
                    changed += 1
    for clip in bpy.data.movieclips:
        if clip.get(RESULT_TAG) and clip.library is None and _is_absolute(clip.filepath):
            clip.filepath = blend_path(Path(clip.filepath), base)
            changed += 1
    return changed


@bpy.app.handlers.persistent
def _on_save(filepath: str, *_unused) -> None:
    if filepath and bpy.context.preferences.filepaths.use_relative_paths:
        changed = store_paths_relative(filepath)
        if changed:
            logger.info("Stored %d Geo4D paths relative to %s.", changed, filepath)


def register() -> None:
    bpy.app.handlers.save_pre.append(_on_save)


def unregister() -> None:
    if _on_save in bpy.app.handlers.save_pre:
        bpy.app.handlers.save_pre.remove(_on_save)

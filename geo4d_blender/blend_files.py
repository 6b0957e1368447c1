"""A .blend on disk: whether a file is one Blender saved, whether it is whole, and saving one under a hidden name."""

from __future__ import annotations

import os
from pathlib import Path

from .core.errors import Geo4DError

# The first bytes of a .blend: uncompressed, or compressed by Blender with zstd (2.90 on) or gzip (before).
BLEND_MAGIC = b"BLENDER"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSED_MAGICS = (ZSTD_MAGIC, b"\x1f\x8b")
# How a complete .blend ends: its last block is ENDB (uncompressed); Blender's zstd files end with the
# seekable format's seek table, whose last four bytes are this magic.
END_BLOCK = b"ENDB"
END_BLOCK_SEARCH = 48
ZSTD_SEEK_TABLE_MAGIC = b"\xb1\xea\x92\x8f"


def is_blend_file(path: Path) -> bool:
    """Whether `path` starts like a file Blender saves: "BLENDER", or a zstd or gzip stream (compressed saves)."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(BLEND_MAGIC))
    except OSError:
        return False
    return head == BLEND_MAGIC or head.startswith(COMPRESSED_MAGICS)


def is_complete_blend(path: Path) -> bool:
    """Whether the .blend Blender saved at `path` ends as a whole file does: Blender can report a save as
    done when the disk filled up halfway (seen with bpy 5.0 on a compressed file), leaving it cut short."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(BLEND_MAGIC))
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - END_BLOCK_SEARCH))
            tail = stream.read()
    except OSError:
        return False
    if head.startswith(ZSTD_MAGIC):
        return tail.endswith(ZSTD_SEEK_TABLE_MAGIC)
    return head == BLEND_MAGIC and END_BLOCK in tail


def save_as_partial(partial: Path, output: Path) -> None:
    """Save the open file as `partial` (a hidden file beside `output`, for core.output_folder.write_file to
    rename over it), refused unless it is whole; errors name `output`, the file the user asked for."""
    import bpy

    filepaths = bpy.context.preferences.filepaths
    versions, filepaths.save_version = filepaths.save_version, 0  # no NAME.blend1 of the hidden file
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(partial), relative_remap=False)
    except RuntimeError as error:
        detail = " ".join(str(error).split())  # Blender's report spans lines: one line for the user
        raise Geo4DError(f"Blender could not save {output}: {detail}. Nothing was changed.") from error
    finally:
        filepaths.save_version = versions  # the user's preference, as it was
    if not is_complete_blend(partial):
        raise Geo4DError(
            f"Blender could not save {output} completely (is the disk full?). Nothing was changed."
        )

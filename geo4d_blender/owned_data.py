"""The Blender data-blocks an import owns: tagged with their result so that re-imports replace only ours."""

from __future__ import annotations

import logging

import bpy

logger = logging.getLogger(__name__)

# Custom property on every data-block an import creates; its value is the result folder's absolute path.
RESULT_TAG = "geo4d_result"
# Custom property on our objects saying what they are: "camera" or "points".
ROLE_TAG = "geo4d_role"
# Custom property on a streamed point cloud whose frames were found damaged on opening the .blend: the problem.
PROBLEM_TAG = "geo4d_problem"

# The bpy.data collections an import creates data-blocks in.
OWNED_KINDS = (
    "objects",
    "collections",
    "meshes",
    "cameras",
    "actions",
    "node_groups",
    "materials",
    "movieclips",
)


class OwnedData:
    """Records each data-block one import creates, so that a failed import removes them all again."""

    def __init__(self, result_key: str) -> None:
        self.result_key = result_key
        self.blocks: list[bpy.types.ID] = []
        self.wanted_names: list[str] = []

    def add(self, block: bpy.types.ID, wanted_name: str | None = None) -> bpy.types.ID:
        """Tag and record `block`; wanted_name (default: its name) is the name it was created with."""
        block[RESULT_TAG] = self.result_key
        self.blocks.append(block)
        self.wanted_names.append(wanted_name or block.name)
        return block

    def settle_names(self) -> None:
        """Drop the ".001" suffixes Blender added while a previous import still held the names.

        A name that something else holds keeps its suffix: Blender renames ours, never theirs.
        """
        for block, wanted in zip(self.blocks, self.wanted_names, strict=True):
            if block.name != wanted and block.name.rpartition(".")[0] == wanted:
                block.name = wanted

    def remove_all(self) -> None:
        remove_blocks(self.blocks, only_unused=False)
        self.blocks, self.wanted_names = [], []


def find_owned(result_key: str, scene: bpy.types.Scene | None = None) -> list[bpy.types.ID]:
    """Every data-block in the file that an import of `result_key` created.

    With `scene`, objects and collections only where they are in that scene: a copy of the scene (whose
    objects carry the same tag) keeps its own. Data such as meshes is listed wherever it is; remove_blocks
    with only_unused keeps what another scene's objects still use.
    """
    blocks = [
        block
        for kind in OWNED_KINDS
        for block in getattr(bpy.data, kind)
        if block.get(RESULT_TAG) == result_key and block.library is None
    ]
    if scene is None:
        return blocks
    collections = {scene.collection, *scene.collection.children_recursive}

    def in_scene(block: bpy.types.ID) -> bool:
        if isinstance(block, bpy.types.Object):
            return scene in block.users_scene
        if isinstance(block, bpy.types.Collection):
            return block in collections
        return True

    return [block for block in blocks if in_scene(block)]


def remove_blocks(blocks: list[bpy.types.ID], only_unused: bool) -> None:
    """Remove objects first, then the data they used; with only_unused, data others still use stays.

    Data goes in rounds (a mesh frees its material, a camera its movie clip). A collection is kept while it
    still holds objects or collections that someone else put there.
    """
    objects = [block for block in blocks if isinstance(block, bpy.types.Object)]
    pending = [block for block in blocks if not isinstance(block, bpy.types.Object)]
    bpy.data.batch_remove(objects)
    if not only_unused:
        bpy.data.batch_remove(pending)
        return
    while True:
        unused = [_is_unused(block) for block in pending]
        if not any(unused):
            break
        bpy.data.batch_remove([block for block, free in zip(pending, unused, strict=True) if free])
        pending = [block for block, free in zip(pending, unused, strict=True) if not free]
    if pending:
        logger.info("Kept %d data-blocks of the previous import that are still in use.", len(pending))


def _is_unused(block: bpy.types.ID) -> bool:
    if isinstance(block, bpy.types.Collection):
        return not block.objects and not block.children
    return block.users == 0

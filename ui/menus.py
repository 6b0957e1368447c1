"""Menu entries of the add-on: File > Import > Geo4D Reconstruction."""

from __future__ import annotations

import bpy

from ..operators.import_result import GEO4D_OT_import_result


def draw_import_entry(self, context: bpy.types.Context) -> None:
    self.layout.operator(GEO4D_OT_import_result.bl_idname, text="Geo4D Reconstruction (.json)")


# (menu, draw function) pairs appended on register and removed on unregister.
MENU_ENTRIES = ((bpy.types.TOPBAR_MT_file_import, draw_import_entry),)


def register() -> None:
    for menu, draw in MENU_ENTRIES:
        menu.append(draw)


def unregister() -> None:
    for menu, draw in reversed(MENU_ENTRIES):
        menu.remove(draw)

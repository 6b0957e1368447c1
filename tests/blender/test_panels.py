"""The panels', menu entry's and preferences' draw() run on Blender's own UILayout, in every state they show.

The bpy module cannot show a region, so no panel is drawn by Blender itself here. The layouts are real
all the same: `WindowManager.popmenu_begin__internal` (the first half of `popup_menu`) returns a new
popup menu whose layout (we draw into a column of it) is a real `UILayout` that checks every call as in the UI (unknown icons and arguments
raise, unknown properties become "property not found" labels). The popup is never ended: ending it
opens a region, which needs a window the module has not (it crashes). Each draw() fills that layout, and
`UILayout.introspect()` reads back what it holds: labels, property buttons and operator buttons.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest
from movie_strips import add_movie_strip, write_clip

from geo4d.preferences import ADDON_NAME
from geo4d.strip_job import RUNNING, StripJob, StripSettings
from geo4d.ui.menus import draw_import_entry
from geo4d.ui.panels import PANELS, SEQUENCER_MAIN, VIEW3D_MAIN


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip"), frames=16)


def new_layout() -> bpy.types.UILayout:
    """A column in a new popup menu's layout (below the menu's own title)."""
    return bpy.context.window_manager.popmenu_begin__internal("Geo4D test", icon="NONE").layout.column()


def buttons(layout: bpy.types.UILayout) -> list[dict]:
    """Every button of the layout in drawing order: dicts with draw_string, tip, and rna or operator."""
    found, pending = [], list(reversed(layout.introspect()))
    while pending:
        item = pending.pop()
        if "items" in item:
            pending.extend(reversed(item["items"]))
        else:
            found.append(item)
    return found


def draw_panel(panel: type) -> list[dict]:
    """The buttons `panel`'s draw() makes in the current context. Its `self` is an instance of the panel's
    own drawing class (Geo4DMainPanel ...) holding the layout, as Blender's panel instance would."""
    drawing_class = panel.__mro__[1]
    drawer = type(drawing_class.__name__, (drawing_class,), {})()
    drawer.layout = new_layout()
    panel.draw(drawer, bpy.context)
    return buttons(drawer.layout)


def texts(found: list[dict]) -> list[str]:
    return [item["draw_string"] for item in found if "rna" not in item and "operator" not in item]


def properties(found: list[dict]) -> set[str]:
    return {item["rna"].split("[")[0] for item in found if "rna" in item}


def operators(found: list[dict]) -> list[str]:
    return [item["operator"] for item in found if "operator" in item]


SETTINGS = {
    f"Geo4DSceneSettings.{name}" for name in ("use_strip_range", "frame_first", "frame_last", "model")
}
SETTINGS |= {
    f"Geo4DSceneSettings.{name}" for name in ("stride", "steps", "points_per_frame", "storage", "points")
}


@pytest.mark.parametrize("panel", [SEQUENCER_MAIN, VIEW3D_MAIN], ids=["sequencer", "3d-view"])
def test_main_panel_without_a_strip_asks_for_one(scene, panel):
    found = draw_panel(panel)
    assert "Select a movie strip in the Sequencer" in texts(found)
    assert "Tiny model ready" in texts(found)
    assert properties(found) == SETTINGS
    assert operators(found) == ["bpy.ops.geo4d.reconstruct_strip()"]
    assert "property not found" not in str(found)


def test_main_panel_with_a_strip_passes_its_settings_to_the_operator(scene, clip):
    add_movie_strip(scene, clip)
    scene.geo4d.stride, scene.geo4d.storage, scene.geo4d.points = 6, "PACKED", "SPLIT"
    found = draw_panel(SEQUENCER_MAIN)
    assert texts(found)[:3] == ["", "shot", "Frames 10-25 (16), 24 fps"]
    (operator,) = [text.replace('"', "'") for text in operators(found)]  # 4.2 quotes with "
    assert operator.startswith(
        "bpy.ops.geo4d.reconstruct_strip(strip='shot', scene_name='Scene', model='tiny'"
    )
    assert "stride=6" in operator and "storage='PACKED'" in operator and "points='SPLIT'" in operator


def test_main_panel_names_what_is_wrong_with_the_strip_and_the_model(scene, clip, tmp_path):
    moved = tmp_path / "moved.mp4"
    moved.write_bytes(clip.read_bytes())
    add_movie_strip(scene, moved)
    moved.unlink()
    scene.geo4d.model = "CHECKPOINT"
    shown = texts(draw_panel(SEQUENCER_MAIN))
    assert f"The movie of the strip 'shot' is missing: {moved.resolve()}" in shown
    assert "No checkpoint set: choose one in the preferences" in shown


def test_main_panel_of_a_running_job_shows_progress_and_cancel(scene, clip, tmp_path, tiny_model):
    strip = add_movie_strip(scene, clip)
    settings = StripSettings(model=tiny_model, result_folder=str(tmp_path / "result"), reuse_result=False)
    job = StripJob(scene, strip, settings).start()
    try:
        found = draw_panel(VIEW3D_MAIN)
    finally:
        job.cancel()
        job.worker.wait(30)
        job.step()
    assert not RUNNING
    assert operators(found) == ["bpy.ops.geo4d.cancel()"]
    assert texts(found)[-1].startswith("Geo4D 'shot': ")  # the progress bar's text


@pytest.mark.parametrize("space", ["SEQUENCE_EDITOR", "VIEW_3D"])
def test_sub_panels_show_the_advanced_settings_and_the_last_run(scene, space):
    advanced, last_run = [panel for panel in PANELS if panel.bl_space_type == space][1:]
    assert properties(draw_panel(advanced)) == {
        f"Geo4DSceneSettings.{name}" for name in ("device", "precision", "seed")
    }
    assert texts(draw_panel(last_run)) == ["Nothing reconstructed yet in this scene"]
    scene.geo4d.last_summary = "16 frames (10-25), focal 52 px = 29.3 mm, 40 s"
    scene.geo4d.last_warnings = "The clip is short; Footage missing"
    assert texts(draw_panel(last_run)) == [scene.geo4d.last_summary, "The clip is short", "Footage missing"]


def test_import_menu_entry(scene):
    menu = SimpleNamespace(layout=new_layout())
    draw_import_entry(menu, bpy.context)
    (entry,) = buttons(menu.layout)
    assert entry["draw_string"] == "Geo4D Reconstruction (.json)"
    assert entry["operator"].startswith("bpy.ops.geo4d.import_result(")


@pytest.fixture
def enabled_addon(scene):
    """The add-on's entry in Blender's preferences, so that its real preferences exist; removed afterwards.

    (addon_utils.enable would re-import the already imported package from disk.)
    """
    addons = bpy.context.preferences.addons
    addon = addons.new()
    addon.module = ADDON_NAME
    yield addon.preferences
    addons.remove(addon)


def draw_preferences(preferences: bpy.types.AddonPreferences) -> list[dict]:
    """Draw as Blender's add-on list does: the layout set on the class, draw() called on the real instance."""
    cls = type(preferences)
    cls.layout = new_layout()
    try:
        cls.draw(preferences, bpy.context)
        return buttons(cls.layout)
    finally:
        del cls.layout


def test_preferences_show_every_setting_and_the_setup_report(enabled_addon):
    found = draw_preferences(enabled_addon)
    names = ("checkpoint", "vae_checkpoint", "device", "precision", "worker_python", "cache_folder")
    names += ("torch_build", "wheel_folder", "ray_address")
    assert properties(found) == {f"Geo4DPreferences.{name}" for name in names}
    assert "bpy.ops.geo4d.check_setup()" in operators(found)
    assert {"bpy.ops.geo4d.setup_environment()", "bpy.ops.geo4d.convert_checkpoint()"} <= set(
        operators(found)
    )
    enabled_addon.setup_report = "torch 2.13.0 (CPU)\nThe tiny model loads"
    assert texts(draw_preferences(enabled_addon))[-2:] == ["torch 2.13.0 (CPU)", "The tiny model loads"]

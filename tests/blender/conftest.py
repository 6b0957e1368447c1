"""Fixtures of the Blender tests: an empty scene per test (with or without the add-on), small exact results on disk."""

from pathlib import Path

import bpy
import pytest
from synthetic_results import write_result

import geo4d


@pytest.fixture
def empty_scene():
    """A fresh, empty Blender file (no cube, light or camera) for each test."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def scene():
    """A fresh, empty Blender file with the add-on registered, unregistered afterwards."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    geo4d.register()
    yield bpy.context.scene
    geo4d.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def room_result(tmp_path: Path):
    """A landscape 48x32, 4-frame synthetic result with its video: (folder, Reconstruction)."""
    folder = tmp_path / "room"
    return folder, write_result(folder, 48, 32)

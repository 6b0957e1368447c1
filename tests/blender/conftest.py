"""Fixtures of the Blender tests: an empty scene per test, and small exact results on disk."""

from pathlib import Path

import bpy
import pytest
from synthetic_results import write_result


@pytest.fixture
def empty_scene():
    """A fresh, empty Blender file (no cube, light or camera) for each test."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def room_result(tmp_path: Path):
    """A landscape 48x32, 4-frame synthetic result with its video: (folder, Reconstruction)."""
    folder = tmp_path / "room"
    return folder, write_result(folder, 48, 32)

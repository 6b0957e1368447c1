"""Non-square pixels (fx != fy): the scene's pixel aspect makes Blender's camera project like the calibration."""

import dataclasses
from pathlib import Path

import bpy
import numpy as np
import pytest
from inspect_scene import check_projection
from synthetic_results import write_result

from geo4d.core.errors import Geo4DError
from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.import_options import ImportOptions
from geo4d.scene_builder import import_result


def with_focal_ratio(folder: Path, truth: Reconstruction, fx_over_fy: float) -> Reconstruction:
    """The result re-saved with fy = fx / fx_over_fy: every point moves onto its pixel's ray under the new fy."""
    k = truth.intrinsics
    changed = dataclasses.replace(truth, intrinsics=Intrinsics(k.fx, k.fx / fx_over_fy, k.cx, k.cy))
    changed.save(folder)
    return changed


@pytest.mark.parametrize(
    ("width", "height", "fx_over_fy", "aspect"),
    [
        (48, 32, 1.25, (1.0, 1.25)),  # 1.25 x 32 rows still narrower than 48 columns: horizontal fit
        (48, 32, 2.0, (1.0, 2.0)),  # 2 x 32 rows outspan 48 columns: the sensor fits the height
        (48, 32, 0.5, (2.0, 1.0)),
        (32, 48, 0.5, (2.0, 1.0)),  # portrait, yet 0.5 x 48 rows fit inside 32 columns: horizontal fit
    ],
    ids=["wider-fx", "wider-fx-vertical-fit", "taller-fy", "portrait-taller-fy"],
)
@pytest.mark.parametrize("storage", ["STREAMED", "PACKED"])
def test_non_square_pixels_project_like_opencv(
    empty_scene, tmp_path, storage, width, height, fx_over_fy, aspect
):
    """Every point lands on its pixel centre through Blender's projection matrix and world_to_camera_view."""
    folder = tmp_path / "result"
    truth = with_focal_ratio(folder, write_result(folder, width, height, seed=5, crop=(1, 2)), fx_over_fy)
    import_result(folder, ImportOptions(frame_start=3, storage=storage))
    render = bpy.context.scene.render
    assert (render.pixel_aspect_x, render.pixel_aspect_y) == pytest.approx(aspect)
    check_projection(truth, frame_start=3)


def test_pixels_beyond_blenders_pixel_aspect_are_refused(empty_scene, tmp_path):
    folder = tmp_path / "result"
    with_focal_ratio(folder, write_result(folder, 48, 32), 250.0)
    with pytest.raises(Geo4DError, match="pixel aspect reaches at most 200"):
        import_result(folder)
    assert not bpy.data.objects and not np.any([scene.camera for scene in bpy.data.scenes])

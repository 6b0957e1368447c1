"""Synthetic ground truth of motion: true masks, the true static surfaces, scenes where much of the image moves."""

import numpy as np
import pytest

from geo4d.core.errors import SettingError
from geo4d.core.synthetic.motion import moving_surfaces, static_surface_distance
from geo4d.core.synthetic.render import Renderer, SceneConfig, render_scene


@pytest.fixture(scope="module")
def crowd():
    config = SceneConfig(frames=6, width=64, height=40, seed=3, movers=6)
    return config, render_scene(config)


def test_true_masks_mark_the_pixels_of_moving_shapes(crowd):
    config, truth = crowd
    renderer = Renderer(config)
    moving = moving_surfaces(renderer.scene)
    for index in (0, 5):
        surface = renderer.render(index).surface
        np.testing.assert_array_equal(truth.motion.moving()[index], moving[surface])
    assert not truth.motion.moving()[truth.depth == 0].any()  # sky does not move


def test_static_pixels_lie_on_the_static_surfaces_and_moving_ones_do_not(crowd):
    config, truth = crowd
    scene = Renderer(config).scene
    world = truth.world_points()
    valid = truth.depth > 0
    moving = truth.motion.moving()
    static_distance = static_surface_distance(scene, world[valid & ~moving])
    assert np.quantile(static_distance, 0.99) < 1e-6
    assert np.median(static_surface_distance(scene, world[moving])) > 0.05


def test_extra_movers_make_a_large_share_of_the_image_move_and_leave_the_scene_as_it_was(crowd):
    _, truth = crowd
    plain = render_scene(SceneConfig(frames=6, width=64, height=40, seed=3))
    valid = truth.depth > 0
    assert truth.motion.moving()[valid].mean() > 0.2 > plain.motion.moving()[plain.depth > 0].mean()
    scene, crowded = Renderer(SceneConfig(seed=3)).scene, Renderer(SceneConfig(seed=3, movers=6)).scene
    assert len(crowded.boxes) == len(scene.boxes) and len(crowded.spheres) == len(scene.spheres) + 6
    for mine, theirs in zip((*scene.boxes, *scene.spheres), (*crowded.boxes, *crowded.spheres), strict=False):
        np.testing.assert_array_equal(mine.motion.base, theirs.motion.base)
    assert truth.settings["synthetic"]["moving_objects"] == plain.settings["synthetic"]["moving_objects"] + 6


def test_movers_are_validated():
    with pytest.raises(SettingError, match="movers"):
        SceneConfig(movers=13)

"""Quality figures against synthetic ground truth: the truth lands on the result's pixels, and the figures
are zero for the truth itself, blind to what the protocol forgives (depth scale, a similarity of the path)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.core.synthetic.quality import quality_figures, truth_at_result
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic
from geo4d.core.video import read_frames

CONFIG = SceneConfig(frames=6, width=96, height=60, seed=12)
NETWORK_SIZE = (64, 32)  # 2:1 from a 1.6:1 video: scaled to 64x40, then 4 rows cropped top and bottom


@pytest.fixture(scope="module")
def clip_and_truth(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("eval") / "scene", CONFIG)
    clip = read_frames(folder / VIDEO_NAME, size=NETWORK_SIZE)
    placeholder = Reconstruction(
        camera_to_world=np.tile(np.eye(4), (CONFIG.frames, 1, 1)),
        intrinsics=Intrinsics(50.0, 50.0, 32.0, 16.0),
        depth=np.zeros((CONFIG.frames, 32, 64), np.float32),
        confidence=np.zeros((CONFIG.frames, 32, 64), np.float32),
        color=clip.frames,
        fps=CONFIG.fps,
        settings={"frame_mapping": dataclasses.asdict(clip.mapping)},
    )
    return clip, truth_at_result(CONFIG, placeholder)


def test_truth_lands_on_the_network_pixels(clip_and_truth):
    clip, truth = clip_and_truth
    assert clip.mapping.crop_top == 4 and truth.depth.shape == (CONFIG.frames, 32, 64)
    full = Reconstruction.load(clip.info.path.parent)
    scale = 64 / 96
    assert truth.intrinsics.fx == pytest.approx(full.intrinsics.fx * scale)
    assert truth.intrinsics.cy == pytest.approx(full.intrinsics.cy * scale - 4)
    np.testing.assert_allclose(truth.camera_to_world, full.camera_to_world)
    # The decoded, resized video matches the truth's colours better than a crop two rows off does.
    error = np.abs(truth.color.astype(int) - clip.frames).mean()
    shifted = np.abs(truth.color[:, 2:].astype(int) - clip.frames[:, :-2]).mean()
    assert error < 0.6 * shifted, (error, shifted)


def test_figures_of_the_truth_and_what_the_protocol_forgives(clip_and_truth):
    _, truth = clip_and_truth
    perfect = quality_figures(truth, truth)
    assert perfect.abs_rel < 1e-6 and perfect.delta_1_25 == 1.0
    assert perfect.focal_error == 0 and perfect.ate < 1e-9 and perfect.rpe_rotation_deg < 1e-4
    assert perfect.constant_abs_rel > 0.05
    moved = truth.camera_to_world.copy()
    moved[:, :3, 3] = 3.0 * moved[:, :3, 3] + np.array([1.0, -2.0, 0.5])  # a similarity of the whole path
    k = truth.intrinsics
    forgiven = dataclasses.replace(
        truth,
        depth=truth.depth * 3.0,
        camera_to_world=moved,
        intrinsics=Intrinsics(1.1 * k.fx, 1.1 * k.fy, k.cx, k.cy),
    )
    figures = quality_figures(forgiven, truth)
    assert figures.abs_rel < 1e-4 and figures.ate < 1e-6
    assert figures.focal_error == pytest.approx(0.1)
    wrong = dataclasses.replace(truth, depth=np.flip(truth.depth, axis=2).copy())
    assert quality_figures(wrong, truth).abs_rel > 0.05

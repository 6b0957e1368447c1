"""Synthetic scenes: exact ground truth, determinism and variety per seed, the result writer and the CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from geo4d.core.camera import invert_rigid, project_points, transform_points
from geo4d.core.errors import Cancelled, Geo4DError
from geo4d.core.evaluation.metrics import rotation_angle_deg
from geo4d.core.result import Reconstruction
from geo4d.core.synthetic.render import (
    SYNTHETIC_VIDEO_COMMENT,
    Renderer,
    SceneConfig,
    render_scene,
    write_synthetic,
)
from geo4d.core.video import probe, read_frames

SMALL = SceneConfig(frames=6, width=160, height=100, seed=3)


@pytest.fixture(scope="module")
def small_truth() -> tuple[Reconstruction, Renderer, list]:
    """The ground truth of SMALL, plus its renderer and each frame's surface-id map."""
    renderer = Renderer(SMALL)
    return render_scene(SMALL), renderer, [renderer.render(k).surface for k in range(SMALL.frames)]


def test_config_is_validated_with_the_bad_value_and_range():
    with pytest.raises(ValueError, match=r"frames = 0 is invalid: it must be an integer in 1..100000"):
        SceneConfig(frames=0)
    with pytest.raises(ValueError, match=r"width = 4"):
        SceneConfig(width=4)
    with pytest.raises(ValueError, match=r"seed = -1"):
        SceneConfig(seed=-1)
    with pytest.raises(ValueError, match=r"fps = 0"):
        SceneConfig(fps=0)


def test_ground_truth_shapes_and_metadata(small_truth):
    truth, renderer, _ = small_truth
    assert truth.depth.shape == (6, 100, 160) and truth.color.shape == (6, 100, 160, 3)
    assert truth.fps == 24.0 and truth.source_frames.tolist() == list(range(6))
    assert np.all(truth.confidence == 1.0)
    k = truth.intrinsics
    assert (k.cx, k.cy) == (80.0, 50.0) and k.fx == k.fy
    fov = math.degrees(2 * math.atan(80.0 / k.fx))
    assert 40.0 <= fov <= 80.0
    rotations = truth.camera_to_world[:, :3, :3]
    np.testing.assert_allclose(
        rotations @ np.swapaxes(rotations, 1, 2), np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)


def test_unprojected_depth_lies_on_the_analytic_surfaces(small_truth):
    """Every pixel's point, through the result's intrinsics and cameras, is on the surface its ray hit."""
    truth, renderer, surfaces = small_truth
    scene = renderer.scene
    points = truth.world_points()
    boxes, checked = len(scene.boxes), 0
    for k, surface in enumerate(surfaces):
        t = renderer.times[k]
        assert np.array_equal(surface == 0, truth.depth[k] == 0), "sky and only sky has no depth"
        ground = points[k][surface == 1]
        np.testing.assert_allclose(ground[:, 2], 0.0, atol=1e-4)
        for index, box in enumerate(scene.boxes):
            rotation, centre = box.motion.pose(t)
            local = (points[k][surface == 2 + index] - centre) @ rotation
            np.testing.assert_allclose(np.abs(local / box.half_size).max(axis=1), 1.0, atol=1e-4)
            checked += len(local)
        for index, sphere in enumerate(scene.spheres):
            _, centre = sphere.motion.pose(t)
            distance = np.linalg.norm(points[k][surface == 2 + boxes + index] - centre, axis=1)
            np.testing.assert_allclose(distance, sphere.radius, atol=1e-4)
            checked += len(distance)
    assert checked > 1000


def test_static_points_agree_across_frames(small_truth):
    """A ground point unprojected in frame 0 is where frame 5's depth map puts it.

    On a plane, inverse depth is affine in pixel coordinates, so bilinear interpolation of frame 5's
    inverse depth at the point's projection must equal the point's inverse depth there exactly.
    """
    truth, _, surfaces = small_truth
    points = truth.world_points()[0][surfaces[0] == 1]
    k = truth.intrinsics
    camera = transform_points(invert_rigid(truth.camera_to_world[5]), points)
    uv = project_points(camera, k.fx, k.fy, k.cx, k.cy)
    corner = np.floor(uv - 0.5).astype(int)
    fraction = uv - 0.5 - corner
    inside = (corner >= 0).all(axis=1) & (corner[:, 0] < truth.width - 1) & (corner[:, 1] < truth.height - 1)
    corner, fraction, camera = corner[inside], fraction[inside], camera[inside]
    rows, cols = corner[:, 1:2] + [0, 0, 1, 1], corner[:, 0:1] + [0, 1, 0, 1]
    on_ground = (surfaces[5][rows, cols] == 1).all(axis=1)
    inverse = 1.0 / truth.depth[5][rows, cols][on_ground].astype(np.float64)
    fx, fy = fraction[on_ground, 0], fraction[on_ground, 1]
    interpolated = (
        inverse[:, 0] * (1 - fx) * (1 - fy)
        + inverse[:, 1] * fx * (1 - fy)
        + inverse[:, 2] * (1 - fx) * fy
        + inverse[:, 3] * fx * fy
    )
    assert on_ground.sum() > 500
    np.testing.assert_allclose(interpolated, 1.0 / camera[on_ground, 2], rtol=1e-5)


def test_moving_objects_move_with_the_frames(small_truth):
    truth, renderer, surfaces = small_truth
    scene = renderer.scene
    moving = [(i, s) for i, s in enumerate(scene.spheres) if not s.motion.is_static]
    moving_boxes = [box for box in scene.boxes if not box.motion.is_static]
    assert moving or moving_boxes
    points = truth.world_points()
    for index, sphere in moving:
        surface_id = 2 + len(scene.boxes) + index
        first_centre = sphere.motion.pose(renderer.times[0])[1]
        last = points[-1][surfaces[-1] == surface_id]
        if len(last):
            assert np.abs(np.linalg.norm(last - first_centre, axis=1) - sphere.radius).max() > 1e-3


def test_deterministic_per_seed_and_varied_across_seeds():
    config = SceneConfig(frames=2, width=64, height=40, seed=11)
    first, again = render_scene(config), render_scene(config)
    np.testing.assert_array_equal(first.depth, again.depth)
    np.testing.assert_array_equal(first.color, again.color)
    np.testing.assert_array_equal(first.camera_to_world, again.camera_to_world)
    others = [render_scene(SceneConfig(frames=2, width=64, height=40, seed=seed)) for seed in (12, 13)]
    for other in others:
        assert other.intrinsics.fx != first.intrinsics.fx
        assert np.abs(other.camera_to_world - first.camera_to_world).max() > 0.1
        assert np.abs(other.color.astype(int) - first.color).mean() > 10


def test_a_seed_is_the_same_scene_at_any_size():
    small = Renderer(SceneConfig(frames=3, width=64, height=40, seed=5))
    large = Renderer(SceneConfig(frames=3, width=128, height=80, seed=5))
    np.testing.assert_array_equal(small.camera_to_world, large.camera_to_world)
    assert large.intrinsics.fx == pytest.approx(2 * small.intrinsics.fx)
    # Portrait: the same lens, so the same focal across the longer side.
    portrait = Renderer(SceneConfig(frames=3, width=40, height=64, seed=5))
    assert portrait.intrinsics.fx == pytest.approx(small.intrinsics.fx)
    assert (portrait.intrinsics.cx, portrait.intrinsics.cy) == (20.0, 32.0)
    assert portrait.render(0).depth.shape == (64, 40)


@pytest.mark.parametrize("seed", range(4))
def test_scenes_are_rich_and_the_camera_moves_smoothly_outside_objects(seed):
    config = SceneConfig(frames=48, width=48, height=30, seed=seed)
    renderer = Renderer(config)
    summary = renderer.scene.summary()
    assert summary["moving_objects"] >= 1 and summary["boxes"] >= 3 and summary["spheres"] >= 2
    frames = [renderer.render(k) for k in range(0, 48, 6)]
    for frame in frames:
        assert len(np.unique(frame.surface)) >= 4
        assert frame.depth[frame.depth > 0].min() > 0.3
        assert frame.color.reshape(-1, 3).std(axis=0).mean() > 15
    centres = renderer.camera_to_world[:, :3, 3]
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.min() > 1e-3 and steps.max() < 0.2
    assert np.linalg.norm(np.diff(centres, 2, axis=0), axis=1).max() < 0.1 * steps.mean()
    forward = renderer.camera_to_world[:, :3, 2]
    turn = np.degrees(np.arccos(np.clip((forward[1:] * forward[:-1]).sum(axis=1), -1, 1)))
    assert turn.max() < 3.0 and np.degrees(np.arccos(forward[0] @ forward[-1])) > 1.0


def test_write_synthetic_stores_decoded_colours_beside_the_video(tmp_path):
    config = SceneConfig(frames=5, width=96, height=64, seed=2)
    folder = write_synthetic(tmp_path / "scene", config)
    assert sorted(p.name for p in folder.iterdir()) == [
        "depth.npz",
        "frames",
        "motion.npz",  # the true motion masks
        "reconstruction.json",
        "video.mp4",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    loaded = Reconstruction.load(folder)
    assert loaded.source_video == "video.mp4"
    info = probe(folder / "video.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (96, 64, 5, 24.0)
    np.testing.assert_array_equal(loaded.color, read_frames(folder / "video.mp4").frames)
    rendered = render_scene(config)
    # Lossy H.264 at crf 12; at this tiny size 4:2:0 chroma dominates the difference (about 1.7 at 512x320).
    difference = np.abs(loaded.color.astype(int) - rendered.color).mean()
    assert difference < 6.0
    assert loaded.settings["synthetic"]["color"]["mean_abs_difference_to_render"] == pytest.approx(
        difference, abs=1e-3
    )
    np.testing.assert_array_equal(loaded.depth, rendered.depth)
    for index in (0, 4):
        xyz, rgb, _ = loaded.frame_points(index)
        assert len(xyz) == int((rendered.depth[index] > 0).sum())


def test_odd_sizes_are_written(tmp_path):
    folder = write_synthetic(tmp_path / "odd", SceneConfig(frames=2, width=33, height=17, seed=1))
    info = probe(folder / "video.mp4")
    assert (info.width, info.height) == (33, 17)
    assert Reconstruction.load(folder).depth.shape == (2, 17, 33)


def test_refuses_a_foreign_folder_and_leaves_nothing_behind(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(Geo4DError, match="not an earlier Geo4D result.*holiday.jpg"):
        write_synthetic(foreign, SceneConfig(frames=1, width=16, height=16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


def test_cancel_stops_before_anything_is_written(tmp_path):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        write_synthetic(tmp_path / "scene", SceneConfig(frames=10, width=16, height=16), cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geo4d", *args], capture_output=True, text=True, timeout=300)


def test_cli_synth_end_to_end(tmp_path):
    out = tmp_path / "synthetic"
    done = run_cli("synth", "-o", str(out), "--frames", "4", "--size", "64x48", "--seed", "7")
    assert done.returncode == 0, done.stderr
    loaded = Reconstruction.load(out)
    assert loaded.depth.shape == (4, 48, 64)
    assert loaded.settings["synthetic"]["seed"] == 7
    assert (out / "video.mp4").is_file()


def test_cli_synth_handheld_marks_its_video(tmp_path):
    out = tmp_path / "handheld"
    done = run_cli("synth", "-o", str(out), "--frames", "40", "--size", "32x24", "--motion", "handheld")
    assert done.returncode == 0, done.stderr
    assert "handheld camera" in done.stdout
    loaded = Reconstruction.load(out)
    assert loaded.settings["synthetic"]["motion"] == "handheld"
    assert probe(out / "video.mp4").comment == SYNTHETIC_VIDEO_COMMENT
    steps = np.linalg.inv(loaded.camera_to_world[:-1]) @ loaded.camera_to_world[1:]
    moved = np.linalg.norm(steps[:, :3, 3], axis=-1)
    assert 0.04 < moved.mean() < 0.11 and rotation_angle_deg(steps[:, :3, :3]).mean() > 3
    # a window's later frames leave its first camera's view: in the window that turns most, the first
    # camera sees under half of what the last one sees
    poses = loaded.camera_to_world
    spans = rotation_angle_deg(np.swapaxes(poses[:-15, :3, :3], 1, 2) @ poses[15:, :3, :3])
    start = int(spans.argmax())
    first, k = poses[start], loaded.intrinsics
    world = loaded.world_points()[start + 15][loaded.valid_mask()[start + 15]]
    local = (world - first[:3, 3]) @ first[:3, :3]
    u, v = k.fx * local[:, 0] / local[:, 2] + k.cx, k.fy * local[:, 1] / local[:, 2] + k.cy
    inside = (local[:, 2] > 0) & (u >= 0) & (u < 32) & (v >= 0) & (v < 24)
    assert spans.max() > 30 and inside.mean() < 0.5, (spans.max(), inside.mean())
    with pytest.raises(ValueError, match="SceneConfig.motion = 'dolly'"):
        SceneConfig(motion="dolly")


def test_cli_synth_bad_options(tmp_path):
    done = run_cli("synth", "-o", str(tmp_path / "x"), "--size", "64by48")
    assert done.returncode == 2 and "WIDTHxHEIGHT" in done.stderr
    done = run_cli("synth", "-o", str(tmp_path / "x"), "--frames", "0")
    assert done.returncode == 1 and "--frames = 0 is invalid" in done.stderr
    assert not (tmp_path / "x").exists()


def test_cli_synth_unwritable_output(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    done = run_cli("synth", "-o", str(blocker / "scene"), "--frames", "1", "--size", "16x16")
    assert done.returncode == 1 and "Cannot write" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]

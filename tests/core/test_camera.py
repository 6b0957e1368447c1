"""Camera conventions: pixel centres, projection round trips, Blender lens and world axes."""

import numpy as np

from geo4d.core import camera


def random_rigid(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = q, rng.normal(size=3)
    return matrix


def test_unprojected_depth_projects_back_to_pixel_centres():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 10, size=(5, 7))
    points = camera.unproject_depth(depth, 8.0, 9.0, 3.4, 2.6)
    uv = camera.project_points(points, 8.0, 9.0, 3.4, 2.6)
    u, v = camera.pixel_centers(5, 7)
    np.testing.assert_allclose(uv[..., 0], u, atol=1e-12)
    np.testing.assert_allclose(uv[..., 1], v, atol=1e-12)
    assert u[0, 0] == 0.5 and v[4, 0] == 4.5
    np.testing.assert_allclose(points[..., 2], depth)


def test_lens_and_focal_are_inverse_and_centred_shift_is_zero():
    lens = camera.lens_from_focal(400.0, 512, 320, 36.0)
    assert np.isclose(lens, 400.0 * 36.0 / 512)
    assert np.isclose(camera.focal_from_lens(lens, 512, 320, 36.0), 400.0)
    centred = camera.blender_intrinsics(400.0, 400.0, 256.0, 160.0, 512, 320, 36.0)
    assert centred == camera.BlenderIntrinsics(lens, 0.0, 0.0, 1.0, 1.0)
    off_centre = camera.blender_intrinsics(400.0, 400.0, 250.0, 170.0, 320, 512, 36.0)
    assert np.isclose(off_centre.shift_x, (160 - 250) / 512) and np.isclose(
        off_centre.shift_y, (170 - 256) / 512
    )


def test_non_square_pixels_stretch_the_shorter_side_by_the_pixel_aspect():
    wide = camera.blender_intrinsics(600.0, 300.0, 256.0, 160.0, 512, 320, 36.0)
    assert (wide.pixel_aspect_x, wide.pixel_aspect_y) == (1.0, 2.0)
    assert np.isclose(wide.lens, 600.0 * 36.0 / 640)  # 2 x 320 rows outspan 512 columns: vertical fit
    tall = camera.blender_intrinsics(300.0, 600.0, 256.0, 160.0, 512, 320, 36.0)
    assert (tall.pixel_aspect_x, tall.pixel_aspect_y) == (2.0, 1.0)
    assert np.isclose(tall.lens, 300.0 * 36.0 / 512)


def test_invert_rigid_matches_numpy_inverse():
    rng = np.random.default_rng(1)
    matrices = np.stack([random_rigid(rng) for _ in range(4)])
    np.testing.assert_allclose(camera.invert_rigid(matrices), np.linalg.inv(matrices), atol=1e-12)


def test_blender_world_puts_first_camera_at_origin_looking_along_y_with_z_up():
    first = random_rigid(np.random.default_rng(2))
    world = camera.blender_world_from(first)
    blender_camera = camera.blender_camera_matrix(world @ first)
    np.testing.assert_allclose(blender_camera[:3, 3], 0, atol=1e-12)
    view_direction = blender_camera[:3, :3] @ np.array([0.0, 0.0, -1.0])
    up_direction = blender_camera[:3, :3] @ np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(view_direction, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(up_direction, [0, 0, 1], atol=1e-12)

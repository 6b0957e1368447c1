"""What moves in a synthetic scene: true motion masks, distances to the true static surfaces, extra movers.

The scene knows which shapes move (core.synthetic.scene.Motion.is_static), so a rendered pixel is moving
exactly when the surface it shows belongs to a moving shape. The static surfaces (ground, walls, resting
boxes and spheres) are the true set that a fused static cloud should lie on.
"""

from __future__ import annotations

import math

import numpy as np

from ..motion_masks import MotionMasks, camera_baseline
from .scene import Motion, Pattern, Scene, Sphere, random_texture

# Extra movers stay inside this disc (metres) with their swing and radius: within the 3.9 m every object
# keeps to, so the camera (at least 4.2 m from the centre) never enters one.
_MOVER_DISC = 1.6
_MOVER_RADIUS = (0.6, 1.0)
MAX_EXTRA_MOVERS = 12


def extra_movers(seed: int, count: int) -> tuple[Sphere, ...]:
    """`count` large moving spheres of a seed, drawn apart from the scene's own draws (its scenes stay as
    they are), so that a large share of the image moves."""
    rng = np.random.default_rng([seed, 2])
    movers = []
    for _ in range(count):
        radius = rng.uniform(*_MOVER_RADIUS)
        angle, distance = rng.uniform(0, 2 * math.pi), _MOVER_DISC * math.sqrt(rng.uniform())
        base = np.array(
            [distance * math.cos(angle), distance * math.sin(angle), radius + rng.uniform(0.0, 0.4)]
        )
        amplitude = np.append(rng.uniform(0.4, 0.7, size=2) * rng.choice([-1, 1], size=2), 0.0)
        motion = Motion(
            base,
            amplitude,
            rng.uniform(0.2, 0.45),
            rng.uniform(0, 2 * math.pi, 3),
            rng.uniform(0, 2 * math.pi),
            rng.uniform(0.3, 1.5) * rng.choice([-1, 1]),
            0.0,
            np.eye(3),
        )
        movers.append(Sphere(radius, motion, random_texture(rng, tuple(Pattern), (2.0, 8.0))))
    return tuple(movers)


def moving_surfaces(scene: Scene) -> np.ndarray:
    """[S] bool by surface id (0 sky, 1 ground, then boxes, then spheres): which surfaces move."""
    shapes = (*scene.boxes, *scene.spheres)
    return np.array([False, False, *(not shape.motion.is_static for shape in shapes)])


def true_motion(
    scene: Scene, surfaces: np.ndarray, camera_to_world: np.ndarray, depth: np.ndarray
) -> MotionMasks:
    """The exact motion masks of rendered frames: score 1 where surfaces [T, H, W] (ids) show a moving shape."""
    score = moving_surfaces(scene)[surfaces].astype(np.float32)
    return MotionMasks(score, 0.5, camera_baseline(camera_to_world, depth), [])


def static_surface_distance(scene: Scene, points: np.ndarray) -> np.ndarray:
    """[N] distance (metres) from world points [N, 3] to the nearest static surface of the scene."""
    points = np.asarray(points, dtype=np.float64)
    distance = np.abs(points[:, 2])  # the ground plane z = 0
    for box in scene.boxes:
        if box.motion.is_static:
            rotation, centre = box.motion.pose(0.0)
            local = (points - centre) @ rotation
            distance = np.minimum(distance, np.abs(_box_distance(local, box.half_size)))
    for sphere in scene.spheres:
        if sphere.motion.is_static:
            centre = sphere.motion.pose(0.0)[1]
            distance = np.minimum(distance, np.abs(np.linalg.norm(points - centre, axis=1) - sphere.radius))
    return distance


def _box_distance(local: np.ndarray, half_size: np.ndarray) -> np.ndarray:
    """Signed distance [N] of box-local points [N, 3] to an axis-aligned box of half extents [3]."""
    q = np.abs(local) - half_size
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    return outside + np.minimum(q.max(axis=1), 0.0)

"""Procedural scenes for synthetic ground truth: layouts, motions, camera paths and solid textures from a seed.

World frame: metres, x and y horizontal, z up, the ground is the plane z = 0. Cameras are OpenCV
(x right, y down, z forward). Everything here is deterministic in the seed and independent of the
image size and clip length, so one seed is one scene at any resolution.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

UP = np.array([0.0, 0.0, 1.0])
# Large odd constants for hashing integer lattice cells into pseudo-random values.
_HASH_PRIMES = np.array([73856093, 19349663, 83492791], dtype=np.uint64)
_HASH_MIX = np.uint64(0x9E3779B97F4A7C15)


class Pattern(IntEnum):
    CHECKER = 0
    STRIPES = 1
    NOISE = 2
    GRADIENT = 3
    TILES = 4
    RINGS = 5


@dataclass(frozen=True, eq=False)
class Texture:
    """A solid texture: colour as a function of object-local position (metres), two colours mixed.

    frequency: cycles per metre; axis: unit vector of stripes, gradients and rings; offset shifts the
    pattern so that equal patterns on different objects differ.
    """

    pattern: Pattern
    color_a: np.ndarray
    color_b: np.ndarray
    frequency: float
    axis: np.ndarray
    offset: np.ndarray

    def evaluate(self, points: np.ndarray, normals: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """RGB [N, 3] float32 in [0, 1] at local points [N, 3] with local unit normals [N, 3].

        footprint [N]: metres covered by one pixel there; a pattern whose cycle spans fewer than four
        pixels fades towards its mean (fully at two), so that distant patterns do not alias into flicker.
        """
        p = points * self.frequency + self.offset
        detail = footprint * self.frequency
        if self.pattern == Pattern.CHECKER:
            mix = _fade(np.floor(p).sum(axis=1) % 2, detail)
        elif self.pattern == Pattern.STRIPES:
            mix = _fade(np.floor(2 * (p @ self.axis)) % 2, detail)
        elif self.pattern == Pattern.RINGS:
            radial = p - np.outer(p @ self.axis, self.axis)
            mix = _fade(np.floor(2 * np.linalg.norm(radial, axis=1)) % 2, detail)
        elif self.pattern == Pattern.GRADIENT:
            mix = 0.5 + 0.5 * np.sin(math.pi * 0.5 * (p @ self.axis))
        elif self.pattern == Pattern.NOISE:
            mix = fractal_noise(p, detail)
        else:
            mix = _tiles(p, normals, detail)
        mix = mix.astype(np.float32)[:, None]
        return self.color_a * (1 - mix) + self.color_b * mix


def _fade(binary: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Pull a 0/1 pattern towards 0.5 where a cycle spans fewer than about four pixels (detail > 0.25)."""
    contrast = np.clip(2.0 - 4.0 * detail, 0.0, 1.0)
    return 0.5 + contrast * (binary - 0.5)


def hash_cells(cells: np.ndarray) -> np.ndarray:
    """Pseudo-random values in [0, 1) [N] for integer lattice cells [N, 3]."""
    mixed = np.bitwise_xor.reduce(cells.astype(np.int64).view(np.uint64) * _HASH_PRIMES, axis=1)
    mixed = (mixed ^ (mixed >> np.uint64(29))) * _HASH_MIX
    return (mixed >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def value_noise(p: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] [N] at points [N, 3] (unit lattice, trilinear with smoothstep)."""
    cell = np.floor(p)
    w = p - cell
    w = w * w * (3 - 2 * w)
    result = np.zeros(len(p))
    for corner in np.ndindex(2, 2, 2):
        weight = np.prod(np.where(np.array(corner, dtype=bool), w, 1 - w), axis=1)
        result += weight * hash_cells(cell + np.array(corner))
    return result


def fractal_noise(p: np.ndarray, detail: np.ndarray, octaves: int = 3) -> np.ndarray:
    """Three octaves of value noise in [0, 1] [N]; an octave finer than the pixel footprint is dropped."""
    total, norm = np.zeros(len(p)), 0.0
    for octave in range(octaves):
        scale, amplitude = 2.0**octave, 0.5**octave
        keep = np.clip(2.0 - 4.0 * detail * scale, 0.0, 1.0)
        total += amplitude * (0.5 + keep * (value_noise(p * scale + 17.0 * octave) - 0.5))
        norm += amplitude
    return np.clip((total / norm - 0.5) * 2.2 + 0.5, 0.0, 1.0)


def _tiles(p: np.ndarray, normals: np.ndarray, detail: np.ndarray, grout: float = 0.06) -> np.ndarray:
    """Tiles of varied shade with grout lines along the two axes least aligned with the normal."""
    cell = np.floor(p)
    distance = np.minimum(p - cell, cell + 1 - p)
    distance[np.arange(len(p)), np.abs(normals).argmax(axis=1)] = np.inf
    is_grout = _fade((distance.min(axis=1) < grout).astype(np.float64), detail)
    shade = 0.35 * hash_cells(cell)
    return np.maximum(shade, is_grout)


@dataclass(frozen=True, eq=False)
class Motion:
    """Pose over time t (seconds): centre = base + amplitude * sin(2 pi frequency t + phase) per axis,
    plus bounce * |sin(2 pi frequency t)| upwards; rotation = tilt, then yaw + spin * t about z."""

    base: np.ndarray
    amplitude: np.ndarray
    frequency: float
    phase: np.ndarray
    yaw: float
    spin: float
    bounce: float
    tilt: np.ndarray

    @property
    def is_static(self) -> bool:
        return not (np.any(self.amplitude) or self.spin or self.bounce)

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(rotation [3, 3] local -> world, centre [3]) at time t."""
        wave = 2 * math.pi * self.frequency * t
        centre = self.base + self.amplitude * np.sin(wave + self.phase)
        centre = centre + UP * self.bounce * abs(math.sin(wave))
        return rotation_z(self.yaw + self.spin * t) @ self.tilt, centre


@dataclass(frozen=True, eq=False)
class Box:
    """An oriented box: half extents [3] along its local axes (metres)."""

    half_size: np.ndarray
    motion: Motion
    texture: Texture


@dataclass(frozen=True, eq=False)
class Sphere:
    radius: float
    motion: Motion
    texture: Texture


@dataclass(frozen=True, eq=False)
class CameraPath:
    """A smooth orbit around the scene centre that keeps looking at a drifting target."""

    radius: float
    radius_wobble: float
    angle: float
    angular_speed: float
    height: float
    height_wobble: float
    target: np.ndarray
    target_drift: np.ndarray
    roll: float
    frequencies: np.ndarray
    phases: np.ndarray

    def camera_to_world(self, times: np.ndarray) -> np.ndarray:
        """OpenCV camera-to-world matrices [T, 4, 4] float64 at times [T] (seconds)."""
        waves = np.sin(2 * math.pi * self.frequencies * times[:, None] + self.phases)
        angle = self.angle + self.angular_speed * times
        radius = self.radius + self.radius_wobble * waves[:, 0]
        eye = np.stack(
            [radius * np.cos(angle), radius * np.sin(angle), self.height + self.height_wobble * waves[:, 1]],
            1,
        )
        target = self.target + self.target_drift * waves[:, 2:3]
        forward = _normalise(target - eye)
        right = _normalise(np.cross(forward, UP))
        down = np.cross(forward, right)
        roll = (self.roll * waves[:, 3])[:, None]
        right, down = np.cos(roll) * right + np.sin(roll) * down, np.cos(roll) * down - np.sin(roll) * right
        matrices = np.tile(np.eye(4), (len(times), 1, 1))
        matrices[:, :3, :3] = np.stack([right, down, forward], axis=-1)
        matrices[:, :3, 3] = eye
        return matrices


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything that is drawn. Surface ids in renders: 0 sky, 1 ground, then boxes (walls first),
    then spheres, in the order of these tuples."""

    ground: Texture
    ground_radius: float
    boxes: tuple[Box, ...]
    spheres: tuple[Sphere, ...]
    camera: CameraPath
    field_of_view: float
    sun: np.ndarray
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray

    def summary(self) -> dict:
        """JSON-ready description for a result's settings."""
        moving = sum(not shape.motion.is_static for shape in (*self.boxes, *self.spheres))
        return {
            "field_of_view_degrees": round(math.degrees(self.field_of_view), 3),
            "boxes": len(self.boxes),
            "spheres": len(self.spheres),
            "moving_objects": moving,
        }


def rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _color(rng: np.random.Generator) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.9), rng.uniform(0.35, 0.95))
    return np.array(rgb, dtype=np.float32)


def random_texture(
    rng: np.random.Generator, patterns: tuple[Pattern, ...], frequency: tuple[float, float]
) -> Texture:
    color_a = _color(rng)
    color_b = np.clip(color_a * rng.uniform(0.25, 0.6) + _color(rng) * rng.uniform(0.2, 0.6), 0, 1).astype(
        np.float32
    )
    return Texture(
        pattern=Pattern(rng.choice(patterns)),
        color_a=color_a,
        color_b=color_b,
        frequency=float(rng.uniform(*frequency)),
        axis=_normalise(rng.normal(size=3)),
        offset=rng.uniform(0, 10, size=3),
    )


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix [3, 3] (from a normalised Gaussian quaternion)."""
    w, x, y, z = _normalise(rng.normal(size=4))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _motion(
    rng: np.random.Generator,
    base: np.ndarray,
    moving: bool,
    bounce: float = 0.0,
    tilt: np.ndarray | None = None,
) -> Motion:
    tilt = np.eye(3) if tilt is None else tilt
    if moving:
        amplitude = np.append(rng.uniform(0.3, 0.7, size=2) * rng.choice([-1, 1], size=2), 0.0)
        return Motion(
            base,
            amplitude,
            rng.uniform(0.15, 0.45),
            rng.uniform(0, 2 * math.pi, 3),
            rng.uniform(0, 2 * math.pi),
            rng.uniform(0.3, 1.5) * rng.choice([-1, 1]),
            bounce,
            tilt,
        )
    return Motion(base, np.zeros(3), 0.0, np.zeros(3), rng.uniform(0, 2 * math.pi), 0.0, 0.0, tilt)


def _object_positions(
    rng: np.random.Generator, count: int, disc: float = 2.2, spacing: float = 1.1
) -> np.ndarray:
    """[count, 2] positions inside a disc, at least `spacing` apart where the draws allow it."""
    candidates = rng.uniform(-disc, disc, size=(64 * count, 2))
    candidates = candidates[np.linalg.norm(candidates, axis=1) < disc]
    chosen = [candidates[0]]
    for candidate in candidates[1:]:
        if len(chosen) == count:
            break
        if np.min(np.linalg.norm(np.array(chosen) - candidate, axis=1)) >= spacing:
            chosen.append(candidate)
    while len(chosen) < count:
        chosen.append(candidates[len(chosen)])
    return np.array(chosen)


def _walls(rng: np.random.Generator, room: float) -> list[Box]:
    """0-4 textured walls, each kept with probability 0.7, on the sides of a square room of half-width `room`."""
    walls = []
    for side in range(4):
        if rng.uniform() < 0.3:
            continue
        height = rng.uniform(1.5, 5.0)
        along_x = side % 2 == 0
        sign = 1.0 if side < 2 else -1.0
        offset = np.array([sign * room, 0.0]) if along_x else np.array([0.0, sign * room])
        extent = np.array([0.15, room + 0.15]) if along_x else np.array([room + 0.15, 0.15])
        centre, half = np.append(offset, height / 2), np.append(extent, height / 2)
        texture = random_texture(
            rng, (Pattern.TILES, Pattern.STRIPES, Pattern.NOISE, Pattern.GRADIENT), (0.5, 2.0)
        )
        walls.append(
            Box(half, Motion(centre, np.zeros(3), 0.0, np.zeros(3), 0.0, 0.0, 0.0, np.eye(3)), texture)
        )
    return walls


def build_scene(seed: int) -> Scene:
    """The scene of a seed: a room of 0-4 walls on a textured ground, 3-6 boxes (some floating and
    tilted) and 2-4 spheres (1-3 of them moving), a camera orbiting outside the objects, and a field
    of view of 40-80 degrees across the longer image side (as a lens gives, landscape or portrait).

    Objects stay within 3.9 m of the centre at all times and the camera at least 4.2 m away, so the
    camera never enters an object.
    """
    rng = np.random.default_rng(seed)
    room = rng.uniform(7.0, 11.0)
    ground = random_texture(rng, (Pattern.TILES, Pattern.CHECKER, Pattern.NOISE), (0.5, 2.0))
    walls = _walls(rng, room)
    box_count, sphere_count = int(rng.integers(3, 7)), int(rng.integers(2, 5))
    positions = _object_positions(rng, box_count + sphere_count)
    moving = set(rng.choice(box_count + sphere_count, size=int(rng.integers(1, 4)), replace=False).tolist())
    object_patterns = tuple(Pattern)
    boxes = []
    for index in range(box_count):
        half = rng.uniform(0.2, 0.55, size=3)
        floating = rng.uniform() < 0.25
        tilt = random_rotation(rng) if floating else None
        base = np.array(
            [*positions[index], 0.4 + np.linalg.norm(half) + rng.uniform(0.0, 0.6) if floating else half[2]]
        )
        motion = _motion(rng, base, index in moving, tilt=tilt)
        boxes.append(Box(half, motion, random_texture(rng, object_patterns, (1.5, 6.0))))
    spheres = []
    for index in range(box_count, box_count + sphere_count):
        radius = rng.uniform(0.2, 0.55)
        lift = rng.choice([0.0, rng.uniform(0.2, 1.2)])
        base = np.array([*positions[index], radius + lift])
        bounce = rng.uniform(0.2, 0.8) if index in moving and lift == 0.0 else 0.0
        texture = random_texture(rng, object_patterns, (2.0, 8.0))
        spheres.append(Sphere(radius, _motion(rng, base, index in moving, bounce), texture))
    camera = CameraPath(
        radius=rng.uniform(4.6, 5.8),
        radius_wobble=rng.uniform(0.0, 0.4),
        angle=rng.uniform(0, 2 * math.pi),
        angular_speed=rng.uniform(0.08, 0.3) * rng.choice([-1, 1]),
        height=rng.uniform(0.8, 2.5),
        height_wobble=rng.uniform(0.0, 0.35),
        target=np.array([*rng.uniform(-1.0, 1.0, size=2), rng.uniform(0.2, 1.0)]),
        target_drift=rng.uniform(-0.5, 0.5, size=3),
        roll=math.radians(rng.uniform(0.0, 5.0)),
        frequencies=rng.uniform(0.05, 0.3, size=4),
        phases=rng.uniform(0, 2 * math.pi, size=4),
    )
    elevation, azimuth = rng.uniform(0.5, 1.2), rng.uniform(0, 2 * math.pi)
    sun = np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ]
    )
    return Scene(
        ground=ground,
        ground_radius=rng.uniform(30.0, 60.0),
        boxes=(*walls, *boxes),
        spheres=tuple(spheres),
        camera=camera,
        field_of_view=math.radians(rng.uniform(40.0, 80.0)),
        sun=sun,
        sky_horizon=np.array(
            colorsys.hsv_to_rgb(rng.uniform(0.5, 0.65), rng.uniform(0.05, 0.3), 0.95), np.float32
        ),
        sky_zenith=np.array(
            colorsys.hsv_to_rgb(rng.uniform(0.55, 0.65), rng.uniform(0.4, 0.8), rng.uniform(0.6, 0.9)),
            np.float32,
        ),
    )

"""Handheld camera paths for synthetic scenes: an operator walking past the objects, panning fast, with shake.

At 24 fps the camera turns 3-5 degrees per frame on average with peaks near 10, and moves 5-10 cm per
frame about 2-3 m from the nearest objects, so one 16-frame window spans tens of degrees and its later
frames look well away from its first camera's view. Deterministic in the seed; the walk starts where
the scene's orbit starts, outside every object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .scene import UP, CameraPath

# Frequencies of the shake (hertz) and its amplitude (degrees) per axis, yaw, pitch and roll.
SHAKE_HERTZ = (3.0, 6.0)
SHAKE_DEGREES = (0.6, 1.5)


@dataclass(frozen=True, eq=False)
class HandheldPath:
    """A walk around the scene centre at `speed` (m/s) with a fast pan and tilt towards a target, and shake.

    pan, tilt: (amplitude in radians, frequency in hertz, phase) of the look's sweep left-right and
    up-down; shake_amplitudes, shake_frequencies, shake_phases [3, 2]: two sinusoids per axis (yaw,
    pitch, roll); bob: vertical bob (metres, hertz).
    """

    radius: float
    angle: float
    speed: float
    height: float
    target: np.ndarray
    pan: tuple[float, float, float]
    tilt: tuple[float, float, float]
    shake_amplitudes: np.ndarray
    shake_frequencies: np.ndarray
    shake_phases: np.ndarray
    bob: tuple[float, float]

    def camera_to_world(self, times: np.ndarray) -> np.ndarray:
        """OpenCV camera-to-world matrices [T, 4, 4] float64 at times [T] (seconds)."""
        angle = self.angle + self.speed / self.radius * times
        bob = self.bob[0] * np.sin(2 * math.pi * self.bob[1] * times)
        eye = np.stack([self.radius * np.cos(angle), self.radius * np.sin(angle), self.height + bob], 1)
        shake = self.shake_amplitudes * np.sin(
            2 * math.pi * self.shake_frequencies * times[:, None, None] + self.shake_phases
        )
        yaw, pitch, roll = shake.sum(-1).T
        yaw = yaw + self.pan[0] * np.sin(2 * math.pi * self.pan[1] * times + self.pan[2])
        pitch = pitch + self.tilt[0] * np.sin(2 * math.pi * self.tilt[1] * times + self.tilt[2])
        ahead = self.target - eye
        heading = np.arctan2(ahead[:, 1], ahead[:, 0]) + yaw
        elevation = np.arctan2(ahead[:, 2], np.hypot(ahead[:, 0], ahead[:, 1])) + pitch
        forward = np.stack(
            [np.cos(elevation) * np.cos(heading), np.cos(elevation) * np.sin(heading), np.sin(elevation)], 1
        )
        right = np.cross(forward, UP)
        right /= np.linalg.norm(right, axis=-1, keepdims=True)
        down = np.cross(forward, right)
        roll = roll[:, None]
        right, down = np.cos(roll) * right + np.sin(roll) * down, np.cos(roll) * down - np.sin(roll) * right
        matrices = np.tile(np.eye(4), (len(times), 1, 1))
        matrices[:, :3, :3] = np.stack([right, down, forward], axis=-1)
        matrices[:, :3, 3] = eye
        return matrices


def handheld_path(seed: int, orbit: CameraPath) -> HandheldPath:
    """The handheld walk of a seed, starting where the scene's orbit starts (outside every object)."""
    rng = np.random.default_rng([seed, 1])
    phases = rng.uniform(0, 2 * math.pi, size=(3, 2))
    return HandheldPath(
        radius=orbit.radius,
        angle=orbit.angle,
        speed=rng.uniform(1.3, 2.2) * rng.choice([-1, 1]),
        height=rng.uniform(1.2, 1.8),
        target=orbit.target,
        pan=(math.radians(rng.uniform(28.0, 40.0)), rng.uniform(0.55, 0.7), rng.uniform(0, 2 * math.pi)),
        tilt=(math.radians(rng.uniform(5.0, 12.0)), rng.uniform(0.3, 0.8), rng.uniform(0, 2 * math.pi)),
        shake_amplitudes=np.radians(rng.uniform(*SHAKE_DEGREES, size=(3, 2))),
        shake_frequencies=rng.uniform(*SHAKE_HERTZ, size=(3, 2)),
        shake_phases=phases,
        bob=(rng.uniform(0.01, 0.03), rng.uniform(1.6, 2.2)),
    )

"""The sliding-window plan: which frames each 16-frame Geo4D window covers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .errors import Geo4DError
from .settings import WINDOW_LENGTH, default_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowPlan:
    """Windows over a clip of `num_frames` frames.

    frame_indices: [N, length] int64, the clip frame fed to each slot of each window. Windows start
    every `stride` frames; a closing window ends on the last frame when the stride does not land there.
    A clip shorter than one window gets a single window padded by repeating its last frame: the network
    sees a still ending, and the aligner fuses the repeated slots into that one frame, so the padding
    never shows up as extra output frames.
    """

    num_frames: int
    length: int
    stride: int
    frame_indices: np.ndarray

    @property
    def num_windows(self) -> int:
        return self.frame_indices.shape[0]

    @property
    def starts(self) -> np.ndarray:
        """[N] first frame of each window."""
        return self.frame_indices[:, 0]

    @property
    def padded(self) -> bool:
        """True when the clip is shorter than one window and its last frame is repeated."""
        return self.num_frames < self.length

    def windows_covering(self, frame: int) -> np.ndarray:
        """Indices of the windows that see `frame`."""
        return np.nonzero((self.frame_indices == frame).any(axis=1))[0]

    def coverage(self) -> np.ndarray:
        """[num_frames] how many windows see each frame (repeated padding slots count once)."""
        seen = np.zeros((self.num_windows, self.num_frames), dtype=bool)
        seen[np.arange(self.num_windows)[:, None], self.frame_indices] = True
        return seen.sum(axis=0)


def plan_windows(num_frames: int, length: int = WINDOW_LENGTH, stride: int | None = None) -> WindowPlan:
    """The window plan of a clip; raises Geo4DError for an empty clip, ValueError for a bad length/stride.

    stride None: the reconstruction settings' default.
    """
    if stride is None:
        stride = default_of("stride")
    if length < 1:
        raise ValueError(f"Window length {length} is invalid; it must be at least 1.")
    if not 1 <= stride <= length:
        raise ValueError(
            f"Window stride {stride} is invalid; it must be in [1, {length}] (the window length)."
        )
    if num_frames < 1:
        raise Geo4DError(
            "The clip has no frames to reconstruct. Choose a video or range with at least one frame."
        )
    if num_frames < length:
        logger.info(
            "Clip of %d frames is shorter than a %d-frame window: repeating its last frame.",
            num_frames,
            length,
        )
        slots = np.minimum(np.arange(length), num_frames - 1)
        return WindowPlan(num_frames, length, stride, slots[None, :].astype(np.int64))
    starts = np.arange(0, num_frames - length + 1, stride)
    if starts[-1] != num_frames - length:
        starts = np.append(starts, num_frames - length)
    indices = starts[:, None] + np.arange(length)[None, :]
    return WindowPlan(num_frames, length, stride, indices.astype(np.int64))

"""Each frame's VAE posterior, encoded once per clip and shared by every window that holds the frame."""

from __future__ import annotations

import logging

import numpy as np
import torch
from einops import rearrange

from ..progress import Reporter
from .window_pipeline import WindowPipeline

logger = logging.getLogger(__name__)


class FramePosteriors:
    """The VAE posterior moments of a clip's frames, encoded on first use and kept on the model's device.

    At stride s a frame lies in up to L / s windows (4 at the default 16 / 4); encoding it once removes the
    other encodes. Each window still draws its own sample, mean + std x its posterior noise, from the same
    moments, so the result is the one of encoding the window's frames itself. Every encoder call holds
    `batch` consecutive frames (fewer only when the clip has fewer): it reads ahead of the window asking,
    and ends at the clip's last frame, so the encoder sees the batch size of the per-window path. Frames
    before the first frame asked for are dropped (windows come in clip order).

    frames: [T, H, W, 3] uint8 RGB at the network size (host memory); batch: frames per encoder call.
    """

    def __init__(self, model: WindowPipeline, frames: np.ndarray, batch: int) -> None:
        self.model, self.frames, self.batch = model, frames, batch
        self.mean: dict[int, torch.Tensor] = {}  # frame index -> float32 [4, h, w] on the model's device
        self.std: dict[int, torch.Tensor] = {}
        self.encoded_frames = 0  # frames run through the encoder so far (a frame encoded twice counts twice)

    def moments(self, frame_indices: np.ndarray, reporter: Reporter) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) float32 [L, 4, h, w] of the frames frame_indices [L] (repeats allowed), encoding
        those not yet held; the cancel flag is checked before every encoder call."""
        for index in frame_indices:
            if int(index) not in self.mean:
                reporter.check_cancel()
                self._encode_from(int(index))
        first = int(np.min(frame_indices))
        for index in [i for i in self.mean if i < first]:
            del self.mean[index], self.std[index]
        mean = torch.stack([self.mean[int(i)] for i in frame_indices])
        std = torch.stack([self.std[int(i)] for i in frame_indices])
        return mean, std

    def _encode_from(self, index: int) -> None:
        """Encode `batch` consecutive frames from `index` (moved back so that they end at the clip's last
        frame when fewer remain); frames already held keep their moments."""
        start = max(0, min(index, len(self.frames) - self.batch))
        chosen = range(start, min(start + self.batch, len(self.frames)))
        frames = torch.from_numpy(self.frames[chosen.start : chosen.stop]).to(self.model.device)
        images = rearrange(frames, "n h w c -> n c h w").float() / 127.5 - 1.0  # [N, 3, H, W] in [-1, 1]
        mean, std = self.model.encode_moments(images, self.batch)
        self.encoded_frames += len(chosen)
        for offset, frame in enumerate(chosen):
            self.mean.setdefault(frame, mean[offset])
            self.std.setdefault(frame, std[offset])

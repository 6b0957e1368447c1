"""Every window of a plan through the window pipeline: several windows per UNet call, fewer when memory runs out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..out_of_memory import is_out_of_memory, release_cached_memory
from ..prediction import WindowPrediction
from ..progress import ProgressEvent, Reporter
from ..windows import WindowPlan
from .compiled import compiled_pipeline
from .frame_posteriors import FramePosteriors
from .window_pipeline import WindowPipeline

if TYPE_CHECKING:
    from ..settings import ReconstructionSettings

logger = logging.getLogger(__name__)

# Windows per network call when window_batch is 0 (auto) on CUDA; halved on every out-of-memory error.
AUTO_CUDA_WINDOW_BATCH = 8


class WindowPredictor:
    """Runs the window pipeline on the windows of a plan with a run's settings (seed, steps, window_batch,
    decode_batch, compile). Window i draws its noise from seed + i, so how windows are batched changes
    nothing; each frame is encoded once for all the windows that hold it (FramePosteriors)."""

    def __init__(self, model: WindowPipeline, settings: ReconstructionSettings) -> None:
        self.model = compiled_pipeline(model) if settings.compile else model
        self.settings = settings
        self.steps = settings.steps or model.config.sampling_steps
        self.device = model.device

    def initial_batch(self) -> int:
        if self.settings.window_batch:
            return self.settings.window_batch
        return AUTO_CUDA_WINDOW_BATCH if self.device.type == "cuda" else 1

    def predict(
        self,
        frames: np.ndarray,
        fps: float,
        plan: WindowPlan,
        reporter: Reporter,
        wanted: Sequence[int] | None = None,
    ) -> tuple[list[WindowPrediction], int]:
        """The windows `wanted` of `plan` (indices into it, in that order; None: every window) over the clip's
        frames [T, H, W, 3] uint8 at frame rate `fps`, and the window batch that fitted in memory."""
        wanted = list(range(plan.num_windows)) if wanted is None else list(wanted)
        total = len(wanted)
        batch = min(self.initial_batch(), total)
        posteriors = FramePosteriors(self.model, frames, self.settings.decode_batch)
        predictions: list[WindowPrediction] = []
        reporter.report("predict", 0, total, f"{total} windows")
        while len(predictions) < total:
            windows = wanted[len(predictions) : len(predictions) + batch]
            try:
                predictions += self.predict_batch(frames, fps, plan, windows, posteriors, reporter)
                ran_out = False
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                if not is_out_of_memory(error) or batch == 1:
                    raise
                ran_out = True
            if ran_out:  # outside the except block, whose traceback still holds the failed batch's tensors
                release_cached_memory(self.device)
                batch //= 2
                logger.warning("Out of memory with %d windows per call; retrying with %d.", 2 * batch, batch)
                continue
            reporter.report("predict", len(predictions), total, f"window {windows[-1] + 1}")
        return predictions, batch

    def predict_batch(
        self,
        frames: np.ndarray,
        fps: float,
        plan: WindowPlan,
        windows: list[int],
        posteriors: FramePosteriors,
        reporter: Reporter,
    ) -> list[WindowPrediction]:
        """The predictions of `windows` (indices into the plan), their UNet passes batched together; each
        frame's VAE posterior comes from `posteriors` (the clip's frames, each encoded once)."""
        total = plan.num_windows
        label = (
            f"window {windows[0] + 1}" + (f"-{windows[-1] + 1}" if len(windows) > 1 else "") + f" of {total}"
        )

        def step(event: ProgressEvent) -> None:
            reporter.report("predict", windows[0], total, f"{label}, DDIM step {event.done}/{event.total}")

        indices = plan.frame_indices[windows]
        return self.model.predict_windows(
            frames[indices],
            fps,
            indices,
            [self.settings.seed + window for window in windows],
            steps=self.steps,
            decode_batch=self.settings.decode_batch,
            reporter=Reporter(step, reporter.cancel),
            posteriors=posteriors,
        )

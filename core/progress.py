"""The one protocol of long work: a progress callback, a cancel check, and the Cancelled exception."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    """Where a long job stands. `done` of `total` units of `stage`; seconds since the job started."""

    stage: str
    done: int
    total: int
    elapsed: float
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def remaining(self) -> float | None:
        """Seconds left by linear extrapolation within the stage; None before the first unit is done."""
        if self.done <= 0 or self.total <= 0:
            return None
        return self.elapsed * (self.total - self.done) / self.done


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


class Reporter:
    """Sends events for one stage and raises Cancelled between units when the cancel check says so."""

    def __init__(self, progress: ProgressCallback | None = None, cancel: CancelCheck | None = None) -> None:
        self.progress = progress
        self.cancel = cancel
        self.started = time.perf_counter()

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled()

    def report(self, stage: str, done: int, total: int, message: str = "") -> None:
        self.check_cancel()
        if self.progress is not None:
            elapsed = time.perf_counter() - self.started
            self.progress(ProgressEvent(stage, done, total, elapsed, message))

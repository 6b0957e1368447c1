"""Alignment: per-window Geo4D predictions fused into one camera path, one focal and per-frame depth."""

from .config import AlignConfig
from .stages import align_windows

__all__ = ["AlignConfig", "align_windows"]

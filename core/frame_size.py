"""Frame geometry without PyAV or torch: the network input size for a video, and how output pixels map to it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .errors import Geo4DError
from .limits import MAX_MODEL_SIDE, MODEL_SIZE_MULTIPLE
from .network.config import MODEL_SIZES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameMapping:
    """How output pixels relate to the displayed video: scale, then centre crop.

    Continuous pixel coordinates (pixel-edge convention of core.camera) map as
    u_source = (u + crop_left) / scale_x and v_source = (v + crop_top) / scale_y.
    """

    source_width: int
    source_height: int
    width: int
    height: int
    scale_x: float
    scale_y: float
    crop_left: int
    crop_top: int

    def to_source(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displayed-video pixel coordinates of output coordinates (u, v), any shape."""
        return (np.asarray(u) + self.crop_left) / self.scale_x, (np.asarray(v) + self.crop_top) / self.scale_y


def parse_size(text: str) -> tuple[int, int]:
    """(W, H) from 'WxH', e.g. '512x320'. Raises ValueError saying the expected form."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"size {text!r} is not of the form WIDTHxHEIGHT, e.g. 512x320")
    width, height = (int(part) for part in parts)
    if width <= 0 or height <= 0:
        raise ValueError(f"size {text!r} must have a positive width and height")
    return width, height


def choose_model_size(
    width: int,
    height: int,
    forced: tuple[int, int] | None = None,
    sizes: tuple[tuple[int, int], ...] = MODEL_SIZES,
) -> tuple[int, int]:
    """The network input size (W, H) for a displayed video size: the closest aspect in `sizes`.

    sizes: the landscape (W, H) sizes the network was made for (MODEL_SIZES for the published model;
    a smaller model has its own, NetworkConfig.input_sizes). Portrait videos (height > width) get the
    transposed size, e.g. 320x512. `forced` overrides the choice; it must be a multiple of 64 in both
    directions.
    """
    if forced is not None:
        forced_width, forced_height = forced
        for name, value in (("width", forced_width), ("height", forced_height)):
            if value <= 0 or value % MODEL_SIZE_MULTIPLE or value > MAX_MODEL_SIDE:
                raise Geo4DError(
                    f"Model {name} {value} is not usable: it must be a multiple of {MODEL_SIZE_MULTIPLE} "
                    f"between {MODEL_SIZE_MULTIPLE} and {MAX_MODEL_SIDE}, e.g. 512x320."
                )
        logger.info(
            "Model size %dx%d (forced) for a %dx%d video.", forced_width, forced_height, width, height
        )
        return forced_width, forced_height
    portrait = height > width
    aspect = max(width, height) / min(width, height)
    if not sizes:
        raise ValueError("choose_model_size needs at least one size in `sizes`.")
    long_side, short_side = min(sizes, key=lambda size: abs(math.log(size[0] / size[1] / aspect)))
    chosen = (short_side, long_side) if portrait else (long_side, short_side)
    logger.info(
        "Model size %dx%d for a %dx%d video: aspect %.3f is closest to %d:%d among %s%s.",
        *chosen,
        width,
        height,
        aspect,
        long_side,
        short_side,
        ", ".join(f"{w}x{h}" for w, h in sizes),
        " (transposed for a portrait video)" if portrait else "",
    )
    return chosen


def frame_mapping(source_width: int, source_height: int, size: tuple[int, int] | None) -> FrameMapping:
    """The mapping of a displayed size scaled to cover size (W, H) and centre-cropped; None keeps the size."""
    if size is None:
        return FrameMapping(source_width, source_height, source_width, source_height, 1.0, 1.0, 0, 0)
    width, height = size
    if not (
        isinstance(width, int) and isinstance(height, int) and 0 < width <= 16384 and 0 < height <= 16384
    ):
        raise Geo4DError(
            f"Output size {size} is not usable: give positive integer (width, height), e.g. (512, 320)."
        )
    scale = max(width / source_width, height / source_height)
    scaled_width = max(width, round(source_width * scale))
    scaled_height = max(height, round(source_height * scale))
    return FrameMapping(
        source_width=source_width,
        source_height=source_height,
        width=width,
        height=height,
        scale_x=scaled_width / source_width,
        scale_y=scaled_height / source_height,
        crop_left=(scaled_width - width) // 2,
        crop_top=(scaled_height - height) // 2,
    )

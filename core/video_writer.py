"""Writing video files with PyAV: frames encoded as H.264 into an .mp4 that appears complete or not at all."""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, Interpolation

from .errors import Geo4DError
from .video import ACCURATE_SCALING


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    crf: int = 12,
    keyframe_interval: int = 24,
    comment: str | None = None,
) -> Path:
    """Encode [T, H, W, 3] uint8 RGB frames as H.264 (BT.709, limited range) into an .mp4.

    comment: stored as the container's "comment" tag (VideoInfo.comment reads it back).

    yuv420p when W and H are even, else yuv444p (4:2:0 cannot hold odd sizes). crf 12 is close to
    visually lossless; decoded colours still differ from `frames` by a few levels (lossy coding).
    A keyframe at least every `keyframe_interval` frames keeps seeking cheap. The file appears
    complete or not at all.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(
            f"frames must be a non-empty [T, H, W, 3] uint8 array, not {frames.dtype} {frames.shape}"
        )
    if not 0 < fps <= 1000:
        raise ValueError(f"fps {fps} is outside (0, 1000]")
    if not 0 <= crf <= 51 or keyframe_interval < 1:
        raise ValueError(f"crf {crf} must be in [0, 51] and keyframe_interval {keyframe_interval} at least 1")
    _, height, width, _ = frames.shape
    pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as error:
        raise Geo4DError(
            f"Cannot write to {path.parent}: {error.strerror}. Choose a writable folder."
        ) from error
    os.close(handle)
    try:
        with av.open(temporary, "w", format="mp4") as container:
            if comment is not None:
                container.metadata["comment"] = comment
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
            stream.options = {"crf": str(crf), "preset": "medium"}
            context = stream.codec_context
            context.gop_size = keyframe_interval
            context.colorspace, context.color_range = Colorspace.ITU709, ColorRange.MPEG
            context.color_primaries, context.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
            for image in frames:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                    format=pixel_format,
                    dst_colorspace="itu709",
                    dst_color_range="MPEG",
                    interpolation=int(Interpolation.BILINEAR | ACCURATE_SCALING),
                )
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path

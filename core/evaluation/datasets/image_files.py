"""Benchmark image files through PyAV: colour PNG/JPEG frames and 16-bit depth PNGs, read and written."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from ...errors import Geo4DError

logger = logging.getLogger(__name__)

DECODERS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg"}
SIXTEEN_BIT_GRAY = ("gray16be", "gray16le")


def _decode(path: Path) -> av.VideoFrame:
    """The one picture of an image file, decoded without a demuxer (file names are never patterns)."""
    codec_name = DECODERS.get(path.suffix.lower())
    if codec_name is None:
        raise Geo4DError(f"{path} is not a PNG or JPEG file; expected one of {', '.join(DECODERS)}.")
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise Geo4DError(f"Expected the image {path}, but it does not exist.") from error
    except OSError as error:
        raise Geo4DError(f"Cannot read {path}: {error.strerror}.") from error
    codec = av.CodecContext.create(codec_name, "r")
    try:
        frames = codec.decode(av.Packet(data)) or codec.decode(None)
    except av.FFmpegError as error:
        raise Geo4DError(
            f"{path} is not a readable {codec_name.upper()} image ({error}). Replace the file."
        ) from error
    if not frames:
        raise Geo4DError(f"{path} holds no picture. Replace the file.")
    return frames[0]


def read_rgb(path: str | Path) -> np.ndarray:
    """Colour image as uint8 [H, W, 3] RGB (any PNG or JPEG pixel format is converted)."""
    return _decode(Path(path)).to_ndarray(format="rgb24")


def read_uint16_png(path: str | Path) -> np.ndarray:
    """Raw values of a 16-bit greyscale PNG as uint16 [H, W]; an 8-bit file is refused, not rescaled."""
    path = Path(path)
    frame = _decode(path)
    if frame.format.name not in SIXTEEN_BIT_GRAY:
        raise Geo4DError(
            f"{path} is a {frame.format.name} image; a depth map must be a 16-bit greyscale PNG. "
            "Use the depth files as the dataset distributes them."
        )
    return frame.to_ndarray(format="gray16le")


def read_depth_png(path: str | Path, units_per_metre: float) -> np.ndarray:
    """Depth in metres, float32 [H, W], of a 16-bit PNG holding depth * units_per_metre; 0 = not measured."""
    return (read_uint16_png(path) / np.float64(units_per_metre)).astype(np.float32)


def _encode(
    array: np.ndarray, codec_name: str, array_format: str, pixel_format: str, quality: int | None = None
) -> bytes:
    height, width = array.shape[:2]
    codec = av.CodecContext.create(codec_name, "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pixel_format
    if quality is not None:
        codec.qmin = codec.qmax = quality
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=array_format)
    if frame.format.name != pixel_format:
        frame = frame.reformat(format=pixel_format)
    return b"".join(bytes(packet) for packet in codec.encode(frame) + codec.encode(None))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write uint8 [H, W, 3] RGB as an 8-bit colour PNG, or uint16 [H, W] as a 16-bit greyscale PNG."""
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        data = _encode(image, "png", "rgb24", "rgb24")
    elif image.dtype == np.uint16 and image.ndim == 2:
        data = _encode(image, "png", "gray16le", "gray16be")
    else:
        raise ValueError(
            f"write_png takes uint8 [H, W, 3] or uint16 [H, W]; got {image.dtype} {image.shape}."
        )
    path = Path(path)
    path.write_bytes(data)
    return path


def write_jpeg(path: str | Path, image: np.ndarray, quality: int = 2) -> Path:
    """Write uint8 [H, W, 3] RGB as a JPEG (lossy; `quality` is FFmpeg's qscale, 2 = best .. 31 = worst)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"write_jpeg takes uint8 [H, W, 3]; got {image.dtype} {image.shape}.")
    if not 2 <= quality <= 31:
        raise ValueError(f"JPEG quality {quality} is outside the allowed range 2..31.")
    path = Path(path)
    path.write_bytes(_encode(image, "mjpeg", "rgb24", "yuvj444p", quality))
    return path

"""Reading video files with PyAV: probe, decode a frame range at a model size, resize image frames the same way."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation

from .errors import Geo4DError
from .frame_size import FrameMapping, frame_mapping
from .movie_timing import MovieTiming, blender_frame_count, is_variable_rate, shown_pictures, timing_warning
from .progress import CancelCheck, ProgressCallback, Reporter

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24.0
# swscale's default YUV <-> RGB path rounds towards darker values (about -1 level per channel for
# 4:2:0); exact rounding and full chroma interpolation remove that bias. The writer uses them too.
ACCURATE_SCALING = Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. width/height are the displayed size, after the rotation metadata.

    rotation: degrees counter-clockwise (FFmpeg's display-matrix convention) by which the stored
    (coded) picture is turned for display; a multiple of 90. fps, num_frames and timing: the frame rate,
    frame count and frame timestamps as Blender's sequencer uses them (core.movie_timing), so frame k is
    the picture a movie strip shows k frames after its start. num_frames_exact: the count comes from the
    stream's own duration; False when it is estimated from the container's duration, or 0 when nothing
    records it. comment: the container's "comment" tag ("" when it has none).
    """

    path: Path
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    fps: float
    num_frames: int
    num_frames_exact: bool
    duration: float
    codec: str
    pixel_format: str
    timing: MovieTiming
    comment: str = ""


@dataclass
class VideoClip:
    """Decoded frames of one range of a video.

    frames: [T, H, W, 3] uint8 RGB, displayed orientation, resized and cropped as `mapping` says.
    source_frames: [T] int64 indices of these frames in the video (0 = first frame), always consecutive.
    decoded_frames: how many pictures the decoder produced to get these (shows that seeking worked).
    frame_times: [T] float64 seconds after the stream's start of the picture each frame shows.
    variable_frame_rate: the decoded pictures are not evenly spaced in time.
    warnings: what the user should know about the frames (a variable rate, repeated or skipped pictures).
    """

    frames: np.ndarray
    source_frames: np.ndarray
    fps: float
    info: VideoInfo
    mapping: FrameMapping
    decoded_frames: int
    frame_times: np.ndarray
    variable_frame_rate: bool
    warnings: list[str]

    def timing_record(self) -> dict:
        """What a result's settings["video"] records of the frames' timing: nothing when the frames are one
        picture each, evenly spaced (constant-rate footage); else "variable_frame_rate" and "frame_times",
        the seconds after the stream's start of each frame's picture."""
        if not self.warnings:
            return {}
        times = [round(float(time), 6) for time in self.frame_times]
        return {"variable_frame_rate": self.variable_frame_rate, "frame_times": times}


def probe(path: str | Path) -> VideoInfo:
    """Size, rotation, fps, frame count and codec of a video file; decodes only its first frame."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        first = _first_frame(container, stream, path)
        return _info(path, stream, first)


def read_frames(
    path: str | Path,
    start: int = 0,
    end: int | None = None,
    size: tuple[int, int] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> VideoClip:
    """Decode frames start..end-1 (end None = to the last frame) as uint8 RGB, displayed orientation.

    Frame k is the picture Blender's sequencer shows at movie frame k, found by presentation timestamps
    (core.movie_timing): on variable frame-rate footage a picture may repeat or be skipped, and the clip
    says so in `warnings`. size (W, H): scale to cover it keeping the aspect, then crop the centre (see
    FrameMapping); None keeps the displayed size. A late range seeks to the keyframe before `start` instead
    of decoding from the beginning.
    """
    path = Path(path)
    reporter = Reporter(progress, cancel)
    info = probe(path)
    end = _check_range(info, start, end)
    mapping = frame_mapping(info.width, info.height, size)
    timing = info.timing
    frames, shown_pts, decoded = [], [], []
    with _open(path) as container:
        stream = _video_stream(container, path)
        pictures = _timestamped(_pictures_from(container, stream, info, start), timing, decoded)
        image, last_picture = None, None
        try:
            # Without a known frame count the frames stop at the last picture; a wanted end is checked below.
            for index, pts, picture in shown_pictures(
                pictures, timing, start, end if info.num_frames else None
            ):
                if end is not None and index >= end:
                    break
                if picture is not last_picture:
                    if picture.is_corrupt:
                        raise Geo4DError(
                            f"{path} is damaged: frame {index} does not decode cleanly. Repair or re-encode it."
                        )
                    image, last_picture = _to_rgb(picture, info, mapping), picture
                frames.append(image)
                shown_pts.append(pts)
                reporter.report("decode video", len(frames), (end or info.num_frames or len(frames)) - start)
        except av.error.FFmpegError as error:
            raise Geo4DError(
                f"{path} is damaged: decoding failed near frame {start + len(frames)} ({error.strerror}). "
                "Repair or re-encode it."
            ) from error
    if not frames or (end is not None and start + len(frames) < end):
        available = timing.frames_until_over(*decoded[-1]) if decoded else 0
        raise Geo4DError(
            f"{path} has only {available} frames (indices 0..{available - 1}); {_describe_range(start, end)} "
            "were requested. Choose a range inside the video."
        )
    shown_pts = np.asarray(shown_pts, dtype=np.int64)
    decoded_pts = np.asarray([pts for pts, _ in decoded], dtype=np.int64)
    variable = is_variable_rate(decoded_pts)
    warning = timing_warning(path.name, timing, shown_pts, decoded_pts, variable)
    if warning:
        logger.warning("%s", warning)
    return VideoClip(
        frames=np.stack(frames),
        source_frames=np.arange(start, start + len(frames), dtype=np.int64),
        fps=info.fps,
        info=info,
        mapping=mapping,
        decoded_frames=len(decoded_pts),
        frame_times=timing.seconds(shown_pts),
        variable_frame_rate=variable,
        warnings=[warning] if warning else [],
    )


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise Geo4DError(f"Video {path} does not exist. Check the path.")
    if not path.is_file():
        raise Geo4DError(f"{path} is not a file. Give the path of a video file.")
    try:
        return av.open(str(path), "r")
    except PermissionError as error:
        raise Geo4DError(f"Video {path} cannot be read: permission denied.") from error
    except av.error.FFmpegError as error:
        raise Geo4DError(
            f"{path} cannot be opened as a video ({error.strerror}): it is damaged, incomplete or not a video file."
        ) from error


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise Geo4DError(
            f"{path} has no video stream (it holds {len(container.streams)} other streams). Give a video file."
        )
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _first_frame(container, stream, path: Path) -> av.VideoFrame:
    try:
        frame = next(container.decode(stream), None)
    except av.error.FFmpegError as error:
        raise Geo4DError(
            f"{path} is damaged: its first frame cannot be decoded ({error.strerror})."
        ) from error
    if frame is None:
        raise Geo4DError(f"{path} holds a video stream without any frames.")
    return frame


def _info(path: Path, stream, first: av.VideoFrame) -> VideoInfo:
    rate = stream.guessed_rate or stream.average_rate or Fraction(DEFAULT_FPS)
    rotation = first.rotation
    if rotation % 90:
        logger.warning(
            "%s: rotation %d degrees is not a multiple of 90; using %d.",
            path,
            rotation,
            round(rotation / 90) * 90,
        )
    rotation = (round(rotation / 90) * 90) % 360
    time_base = stream.time_base or Fraction(1, av.time_base)
    timing = MovieTiming(Fraction(rate), Fraction(time_base), stream.start_time or 0)
    container = stream.container
    stream_duration = stream.duration * float(time_base) if stream.duration is not None else None
    container_duration = container.duration / av.time_base if container.duration is not None else None
    audio_start = next(
        (
            float(audio.start_time * audio.time_base)
            for audio in container.streams.audio[:1]
            if audio.start_time
        ),
        0.0,
    )
    num_frames = blender_frame_count(
        float(rate),
        stream_duration,
        container_duration,
        float(timing.start_pts * time_base),
        audio_start,
        stream.frames,
    )
    quarter_turn = rotation in (90, 270)
    width, height = (first.height, first.width) if quarter_turn else (first.width, first.height)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        coded_width=first.width,
        coded_height=first.height,
        rotation=rotation,
        fps=float(rate),
        num_frames=num_frames,
        num_frames_exact=stream_duration is not None,
        duration=stream_duration if stream_duration is not None else (container_duration or 0.0),
        codec=stream.codec_context.name,
        pixel_format=first.format.name,
        timing=timing,
        comment=str(container.metadata.get("comment", "")),
    )


def _check_range(info: VideoInfo, start: int, end: int | None) -> int | None:
    """Validate a frame range against the frame count; returns end (None = to the end, count unknown)."""
    if start < 0 or (end is not None and end <= start):
        raise Geo4DError(f"Frame range {start}..{end} is empty or negative. Give 0 <= start < end.")
    count = info.num_frames
    if count and (start >= count or (end is not None and end > count)):
        estimate = "" if info.num_frames_exact else "only "
        raise Geo4DError(
            f"{info.path} has {estimate}{count} frames at {info.fps:g} fps (indices 0..{count - 1}); "
            f"{_describe_range(start, end)} were requested. Choose a range inside the video."
        )
    return (count or None) if end is None else end


def _describe_range(start: int, end: int | None) -> str:
    return f"frames {start}..{end - 1}" if end is not None else f"frames {start} to the end"


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, FrameMapping]:
    """Frames uint8 [T, H, W, 3] RGB (image files, not a video) scaled to cover size (W, H) and centre-cropped
    exactly as read_frames does with decoded frames (same scaler and filters), with their FrameMapping."""
    mapping = frame_mapping(frames.shape[2], frames.shape[1], size)
    scaled_width = round(mapping.scale_x * mapping.source_width)
    scaled_height = round(mapping.scale_y * mapping.source_height)
    interpolation = _scaler_flags(scaled_width * scaled_height < frames.shape[1] * frames.shape[2])
    top, left = mapping.crop_top, mapping.crop_left
    resized = np.empty((len(frames), mapping.height, mapping.width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):  # one scaler call per frame
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").to_ndarray(
            width=scaled_width, height=scaled_height, format="rgb24", interpolation=interpolation
        )
        resized[index] = image[top : top + mapping.height, left : left + mapping.width]
    return resized, mapping


def _scaler_flags(shrinking: bool) -> int:
    """swscale flags: area averaging to shrink, bicubic to enlarge, both with exact rounding."""
    return int((Interpolation.AREA if shrinking else Interpolation.BICUBIC) | ACCURATE_SCALING)


def _pictures_from(container, stream, info: VideoInfo, start: int) -> Iterator[av.VideoFrame]:
    """Decoded pictures of a freshly opened stream, from the keyframe at or before frame `start`'s target.

    Seeks back further if the container's index lands after the target; decodes from the beginning when
    that fails, when the stream cannot seek (reopening the file), or when it lacks timestamps.
    """
    timing = info.timing
    origin = timing.start_pts
    target = int(timing.target_pts(start))
    moved = False
    for back_off in (0.5 * timing.ticks_per_frame, 2.0 / timing.time_base, 10.0 / timing.time_base):
        offset = max(origin, target - int(back_off))
        if offset == origin:
            break
        try:
            container.seek(offset, backward=True, any_frame=False, stream=stream)
        except av.error.FFmpegError:
            logger.debug("%s cannot seek; decoding from the first frame.", info.path)
            with _open(info.path) as fresh:  # a failed seek leaves the demuxer unusable
                yield from fresh.decode(_video_stream(fresh, info.path))
            return
        moved = True
        pictures = container.decode(stream)
        first = next(pictures, None)
        if first is None or _picture_pts(first) is None:
            break
        if _picture_pts(first) <= target:
            yield first
            yield from pictures
            return
        logger.debug(
            "Seek for frame %d landed at pts %d after %d; seeking further back.", start, first.pts, target
        )
    if moved:
        container.seek(origin, backward=True, any_frame=False, stream=stream)
    yield from container.decode(stream)


def _timestamped(
    pictures: Iterator[av.VideoFrame], timing: MovieTiming, seen: list[tuple[int, int]]
) -> Iterator[tuple[int, int, av.VideoFrame]]:
    """(pts, duration in ticks, picture); appends (pts, duration) of each to `seen`.

    A picture without timestamps is placed one frame after the one before (the first at the stream's start).
    """
    previous = None
    for picture in pictures:
        pts = _picture_pts(picture)
        if pts is None:
            pts = timing.start_pts if previous is None else previous + round(timing.ticks_per_frame)
        duration = int(picture.duration or 0)
        seen.append((pts, duration))
        previous = pts
        yield pts, duration, picture


def _picture_pts(picture: av.VideoFrame) -> int | None:
    """A picture's presentation timestamp, else its packet's decoding timestamp (as Blender reads them)."""
    return picture.pts if picture.pts is not None else picture.dts


def _to_rgb(frame: av.VideoFrame, info: VideoInfo, mapping: FrameMapping) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a decoded frame: scaled in coded orientation, rotated, centre-cropped."""
    scaled_width = round(mapping.scale_x * mapping.source_width)
    scaled_height = round(mapping.scale_y * mapping.source_height)
    if info.rotation in (90, 270):
        scaled_width, scaled_height = scaled_height, scaled_width
    shrinking = scaled_width * scaled_height < frame.width * frame.height
    image = frame.to_ndarray(
        width=scaled_width,
        height=scaled_height,
        format="rgb24",
        interpolation=_scaler_flags(shrinking),
        src_color_range=frame.color_range,
    )
    image = np.rot90(image, k=info.rotation // 90)
    top, left = mapping.crop_top, mapping.crop_left
    return np.ascontiguousarray(image[top : top + mapping.height, left : left + mapping.width])

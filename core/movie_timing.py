"""Which decoded picture Blender's sequencer shows at each frame of a movie, and how many frames it counts.

The rule of Blender's FFmpeg movie reader (source/blender/imbuf/movie/intern/movie_read.cc; anim_movie.cc
before 4.4) when the movie has no timecode index (Blender makes one only when proxies are built):

- The frame rate is av_guess_frame_rate() of the video stream (r_frame_rate, or avg_frame_rate when
  r_frame_rate is implausibly high); it is also the strip's fps (startffmpeg).
- Movie frame k (0-based) is looked for at pts_to_search = round(k / (rate * time_base)) + the stream's
  start_time, rounded half away from zero (ffmpeg_get_pts_to_search).
- The reader seeks to a keyframe before that, decodes while the picture's pts is below it, and shows the
  picture whose interval [pts, next picture's pts) holds it (ffmpeg_decode_video_frame_scan,
  ffmpeg_frame_by_pts_get): the last picture with pts <= pts_to_search; the first picture for earlier
  targets, the last picture past the end of the stream. A picture's pts is its pts, else its packet's dts.
- The frame count (the strip's length, ffmpeg_frame_count_get) is round(stream duration * rate); without a
  stream duration, (container duration - the video's start offset beyond the first audio stream's) * rate;
  without either, the stream's frame count.

On a variable frame-rate (VFR) movie this repeats a picture where the gap to the next one is longer than a
frame and skips pictures closer than a frame apart: that is what the sequencer shows, so the camera of
frame k must be the camera of that picture. Checked by rendering VFR files from the sequencer with
Blender 4.2.23, 4.5.15 and 5.0.1 (tests/blender/test_vfr_strip.py repeats it with the installed bpy).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import numpy as np

Picture = TypeVar("Picture")
# Frame intervals within this fraction of their median count as one constant rate: timestamps rounded to a
# container's time base (33/34 ms for 30 fps in milliseconds) jitter by a few percent.
RATE_TOLERANCE = 0.1


@dataclass(frozen=True)
class MovieTiming:
    """A video stream's clock as Blender reads it.

    rate: frames per second Blender uses (av_guess_frame_rate); time_base: seconds per pts tick;
    start_pts: the stream's start_time in ticks (0 when the container gives none).
    """

    rate: Fraction
    time_base: Fraction
    start_pts: int

    @property
    def ticks_per_frame(self) -> float:
        """pts ticks per movie frame, as a double like Blender's ffmpeg_steps_per_frame_get."""
        return float(1 / (self.rate * self.time_base))

    def target_pts(self, frames: np.ndarray | int) -> np.ndarray:
        """int64 pts Blender looks for at movie frames `frames` (non-negative ints, any shape)."""
        return _round_half_up(np.asarray(frames, dtype=np.float64) * self.ticks_per_frame) + self.start_pts

    def frames_before(self, pts: int) -> int:
        """How many movie frames (0, 1, ...) Blender looks for at a pts below `pts`."""
        guess = max(0, int((pts - self.start_pts) / self.ticks_per_frame) + 2)
        return int(np.searchsorted(self.target_pts(np.arange(guess + 1)), pts, side="left"))

    def frames_until_over(self, last_pts: int, last_duration: int) -> int:
        """The frame count when nothing records one: frames looked for before the last picture is over
        (its duration in ticks, one frame when unknown)."""
        return self.frames_before(last_pts + (last_duration or round(self.ticks_per_frame)))

    def seconds(self, pts: np.ndarray) -> np.ndarray:
        """float64 seconds of pts values after the stream's start."""
        return (np.asarray(pts, dtype=np.float64) - self.start_pts) * float(self.time_base)


def blender_frame_count(
    rate: float,
    stream_duration: float | None,
    container_duration: float | None,
    video_start: float,
    audio_start: float,
    stream_frames: int,
) -> int:
    """The movie's length in frames as Blender counts it (ffmpeg_frame_count_get); 0 when nothing tells.

    Durations and starts in seconds; None where the file records none. audio_start: the first audio stream's
    start (0 without audio).
    """
    if stream_duration is not None:
        return int(_round_half_up(stream_duration * rate))
    if container_duration is not None:
        offset = video_start - audio_start if video_start > audio_start else 0.0
        return int(_round_half_up((container_duration - offset) * rate))
    return stream_frames


def shown_pictures(
    pictures: Iterable[tuple[int, int, Picture]], timing: MovieTiming, start: int, end: int | None
) -> Iterator[tuple[int, int, Picture]]:
    """(movie frame, pts, picture) for frames start, start + 1, ... by Blender's rule (module docstring).

    pictures: (pts, duration in ticks, picture) in presentation order, from a keyframe at or before the
    target of `start` (or from the first picture). end: the first frame not wanted; frames past the last
    picture show it, as in Blender. None: the frame count is unknown, so frames stop where the last
    picture's duration ends. Reads one picture past each frame's target, as the reader does.
    """
    frame = start
    held: tuple[int, int, Picture] | None = None
    for pts, duration, picture in pictures:
        while held is not None and (end is None or frame < end) and pts > timing.target_pts(frame):
            yield frame, held[0], held[2]
            frame += 1
        if end is not None and frame >= end:
            return
        held = (pts, duration, picture)
    if held is None:
        return
    stop = end if end is not None else timing.frames_until_over(held[0], held[1])
    for later in range(frame, stop):
        yield later, held[0], held[2]


def is_variable_rate(picture_pts: np.ndarray) -> bool:
    """Whether the intervals between consecutive pictures' pts differ from their median by more than
    RATE_TOLERANCE of it (and more than one tick). picture_pts: [N] int in presentation order."""
    intervals = np.diff(np.asarray(picture_pts, dtype=np.int64))
    if len(intervals) < 2:
        return False
    median = float(np.median(intervals))
    return bool((np.abs(intervals - median) > max(1.0, RATE_TOLERANCE * median)).any())


def repeats_and_skips(shown_pts: np.ndarray, decoded_pts: np.ndarray) -> tuple[int, int]:
    """(frames that repeat an earlier frame's picture, pictures between the first and last shown that no
    frame shows). shown_pts: [T] pts of each frame's picture; decoded_pts: [N] pts of every decoded picture."""
    shown = np.unique(shown_pts)
    between = np.unique(decoded_pts[(decoded_pts >= shown[0]) & (decoded_pts <= shown[-1])])
    return len(shown_pts) - len(shown), int(len(np.setdiff1d(between, shown)))


def timing_warning(
    name: str, timing: MovieTiming, shown_pts: np.ndarray, decoded_pts: np.ndarray, variable: bool
) -> str | None:
    """What the user should know when frames are not one picture each, evenly spaced (None when they are).

    name: the video's file name; shown_pts: [T] pts of each frame's picture; decoded_pts: [N] pts of every
    decoded picture; variable: is_variable_rate(decoded_pts).
    """
    repeated, skipped = repeats_and_skips(shown_pts, decoded_pts)
    if not (variable or repeated or skipped):
        return None
    fps = float(timing.rate)
    intervals = np.diff(decoded_pts) * float(timing.time_base)
    spacing = (
        f"has a variable frame rate (pictures {1000 * intervals.min():.1f} to {1000 * intervals.max():.1f} ms apart)"
        if variable
        else f"has pictures that drift off its {fps:g} fps frames"
    )
    effect = (
        f"{repeated} frame(s) repeat the picture before and {skipped} picture(s) are skipped"
        if repeated or skipped
        else "each frame shows its own picture, but at uneven times"
    )
    rate = max(1, round(1 / float(np.median(intervals)))) if len(intervals) else round(fps)
    return (
        f"{name} {spacing}. Frame k is the picture Blender's sequencer shows at movie frame k at {fps:g} fps: "
        f"{effect}. For exact timing, re-encode it at a constant frame rate (e.g. ffmpeg -i {name} -fps_mode "
        f"cfr -r {rate} constant.mp4) and reconstruct that file."
    )


def _round_half_up(values: np.ndarray | float) -> np.ndarray:
    """int64 of non-negative values rounded half away from zero, as C's round() and lround() do."""
    values = np.asarray(values, dtype=np.float64)
    whole = np.trunc(values)
    return (whole + (values - whole >= 0.5)).astype(np.int64)

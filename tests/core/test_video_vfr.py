"""Variable frame-rate videos made with PyAV: frame k is the picture Blender's sequencer shows at movie frame k."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_video import frame_number, marked_frames

from geo4d.core.errors import Geo4DError
from geo4d.core.reconstruction import ReconstructionSettings, load_model, reconstruct
from geo4d.core.video import probe, read_frames
from geo4d.core.video_writer import write_video

# Picture timestamps in ms of a 30 fps clip with phone-like faults: a dropped picture (133 -> 200), a burst
# 17 ms apart (233, 250, 267) and a picture 1 ms late (334).
GAPPY_PTS = [0, 33, 67, 100, 133, 200, 233, 250, 267, 300, 334, 367, 400, 433, 467, 500, 533, 567, 600, 633]
# Blender looks for frame k at round(k * 1000 / 30) ms = 0, 33, 67, 100, 133, 167, 200, 233, 267, 300, 333,
# 367, ... and shows the last picture at or before it: frame 5 (167 ms) repeats picture 4 (133), frame 8
# (267) shows picture 8 and skips picture 7 (250), frame 10 (333) repeats picture 9 (300) because picture
# 10 comes at 334, and picture 10 is skipped. The container's duration, 666 ms, gives round(19.98) = 20
# frames.
GAPPY_SHOWN = [0, 1, 2, 3, 4, 4, 5, 6, 8, 9, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19]


def write_timed(
    path: Path, pts: list[int], ticks_per_second: int, rate: int = 30, options: dict | None = None
) -> Path:
    """An H.264 video whose picture i is marked_frames' picture i, presented at pts[i] / ticks_per_second s."""
    time_base = Fraction(1, ticks_per_second)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"crf": "10"}
        stream.codec_context.gop_size = 12
        for image, stamp in zip(marked_frames(len(pts), 48, 64), pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def blender_shown(pts: list[int], ticks_per_frame: float, start_pts: int, count: int) -> list[int]:
    """Blender's rule written out plainly: frame k looks for round(k * ticks_per_frame) + start_pts (half
    away from zero) and shows the last picture at or before it, the first picture before any."""
    shown = []
    for k in range(count):
        target = math.floor(k * ticks_per_frame + 0.5) + start_pts
        shown.append(max([i for i, stamp in enumerate(pts) if stamp <= target], default=0))
    return shown


@pytest.fixture(scope="module")
def gappy(tmp_path_factory) -> Path:
    return write_timed(tmp_path_factory.mktemp("vfr") / "gappy.mkv", GAPPY_PTS, 1000)


@pytest.fixture(scope="module")
def phone(tmp_path_factory) -> tuple[Path, list[int]]:
    """120 pictures on a 1/600 s clock (as phones write): 29.97 fps with jitter, drops and 60 fps bursts."""
    rng = np.random.default_rng(7)
    steps = rng.choice([20.02, 40.04, 10.01], size=119, p=[0.8, 0.1, 0.1])
    pts = np.round(np.concatenate([[0.0], np.cumsum(steps)])).astype(int).tolist()
    path = tmp_path_factory.mktemp("vfr") / "phone.mp4"
    return write_timed(path, pts, 600, options={"video_track_timescale": "600"}), pts


def test_frames_follow_blenders_rule(gappy):
    info = probe(gappy)
    assert (info.fps, info.num_frames) == (30.0, 20)
    clip = read_frames(gappy)
    np.testing.assert_array_equal(frame_number(clip.frames), GAPPY_SHOWN)
    np.testing.assert_array_equal(clip.source_frames, np.arange(20))
    np.testing.assert_allclose(clip.frame_times, np.array(GAPPY_PTS)[GAPPY_SHOWN] / 1000)


def test_every_range_is_the_same_frames_as_the_whole(gappy):
    for start in range(20):
        for end in range(start + 1, 21):
            clip = read_frames(gappy, start, end)
            np.testing.assert_array_equal(clip.source_frames, np.arange(start, end))
            np.testing.assert_array_equal(frame_number(clip.frames), GAPPY_SHOWN[start:end])


def test_phone_video_without_a_range_reads_every_frame_blender_shows(phone):
    path, pts = phone
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, time_base, duration = stream.guessed_rate, stream.time_base, stream.duration
    assert time_base == Fraction(1, 600)
    count = math.floor(duration * float(time_base) * float(rate) + 0.5)  # Blender's strip length
    expected = blender_shown(pts, float(1 / (rate * time_base)), 0, count)
    info = probe(path)
    assert (info.fps, info.num_frames) == (float(rate), count)
    clip = read_frames(path)
    np.testing.assert_array_equal(frame_number(clip.frames), expected)
    np.testing.assert_array_equal(clip.source_frames, np.arange(count))
    # A late range seeks (keyframes every 12 pictures) and still shows exactly the same pictures.
    late = read_frames(path, count - 40, count - 3)
    np.testing.assert_array_equal(frame_number(late.frames), expected[count - 40 : count - 3])
    np.testing.assert_array_equal(late.source_frames, np.arange(count - 40, count - 3))
    assert late.decoded_frames < 50


def test_the_clip_records_and_warns_about_a_variable_rate(gappy):
    clip = read_frames(gappy)
    assert clip.variable_frame_rate
    (warning,) = clip.warnings
    assert "gappy.mkv has a variable frame rate (pictures 17.0 to 67.0 ms apart)" in warning
    assert "2 frame(s) repeat the picture before and 2 picture(s) are skipped" in warning
    assert "re-encode it at a constant frame rate" in warning
    record = clip.timing_record()
    assert record["variable_frame_rate"] is True
    assert record["frame_times"][:6] == [0.0, 0.033, 0.067, 0.1, 0.133, 0.133]


def test_constant_rate_video_has_no_timing_record(tmp_path):
    path = write_video(tmp_path / "steady.mp4", marked_frames(30, 48, 64), fps=30, keyframe_interval=12)
    for clip in (read_frames(path), read_frames(path, 17, 23)):
        assert not clip.variable_frame_rate and clip.warnings == [] and clip.timing_record() == {}
    np.testing.assert_array_equal(frame_number(read_frames(path, 17, 23).frames), np.arange(17, 23))


def test_range_past_the_end_counts_frames_as_the_request_did(gappy):
    with pytest.raises(
        Geo4DError, match=r"has only 20 frames at 30 fps \(indices 0..19\); frames 15..24 were"
    ):
        read_frames(gappy, 15, 25)
    with pytest.raises(Geo4DError, match="frames 20 to the end were requested"):
        read_frames(gappy, 20)


def test_stream_without_duration_or_seeking(tmp_path):
    """A raw H.264 stream records no duration and cannot seek: frames end with its last picture."""
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index, image in enumerate(marked_frames(20, 48, 64)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert probe(path).num_frames == 0
    np.testing.assert_array_equal(frame_number(read_frames(path).frames), np.arange(20))
    np.testing.assert_array_equal(frame_number(read_frames(path, 5, 9).frames), np.arange(5, 9))
    with pytest.raises(Geo4DError, match=r"has only 20 frames \(indices 0..19\); frames 15..29 were"):
        read_frames(path, 15, 30)


def test_reconstruction_records_the_variable_rate(gappy, tmp_path):
    from test_reconstruction import FAST, tiny_network_file

    model = load_model(tiny_network_file(tmp_path / "tiny.safetensors"), "cpu")
    result = reconstruct(gappy, model, ReconstructionSettings(**{**FAST.__dict__, "start": 2, "end": 18}))
    np.testing.assert_array_equal(result.source_frames, np.arange(2, 18))
    video = result.settings["video"]
    assert video["variable_frame_rate"] is True and video["fps"] == 30.0
    assert video["frame_times"] == [GAPPY_PTS[i] / 1000 for i in GAPPY_SHOWN[2:18]]
    assert any("variable frame rate" in warning for warning in result.warnings)

"""Video input and output with real files encoded by PyAV: sizes, rotation, seeking, ranges and damage."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.frame_size import choose_model_size
from geo4d.core.video import probe, read_frames
from geo4d.core.video_writer import write_video


def marked_frames(count: int, height: int, width: int) -> np.ndarray:
    """[T, H, W, 3] uint8: a white top-left quadrant (to see orientation) and the frame index coded in the
    bottom-right quadrant as red = 8 x (index mod 32), green = 8 x (index div 32), coarse enough for H.264."""
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[:, : height // 2, : width // 2] = 255
    index = np.arange(count)
    frames[:, height // 2 :, width // 2 :, 0] = (8 * (index % 32))[:, None, None]
    frames[:, height // 2 :, width // 2 :, 1] = (8 * (index // 32))[:, None, None]
    return frames


def frame_number(frames: np.ndarray) -> np.ndarray:
    """The index encoded by marked_frames, read back from the bottom-right quadrant of [T, H, W, 3]."""
    height, width = frames.shape[1:3]
    patch = frames[:, height * 5 // 8 : height * 7 // 8, width * 5 // 8 : width * 7 // 8, :2]
    red, green = np.round(patch.reshape(len(frames), -1, 2).mean(axis=1) / 8).astype(int).T
    return red + 32 * green


def write_rotated(path: Path, frames: np.ndarray, rotation: int) -> Path:
    """An H.264 mp4 whose display matrix says: turn the stored picture `rotation` degrees counter-clockwise."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "10"}
        stream.set_display_rotation(rotation)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> tuple[Path, np.ndarray]:
    frames = marked_frames(120, 48, 64)
    path = tmp_path_factory.mktemp("video") / "long.mp4"
    return write_video(path, frames, fps=24, keyframe_interval=12), frames


def test_probe_reports_size_rate_count_and_codec(long_video):
    path, _ = long_video
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.fps == 24.0 and info.num_frames == 120 and info.num_frames_exact
    assert info.codec == "h264" and info.duration == pytest.approx(5.0, abs=0.05)


def test_full_read_matches_encoded_frames(long_video):
    path, frames = long_video
    clip = read_frames(path)
    assert clip.frames.shape == (120, 48, 64, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(clip.source_frames, np.arange(120))
    np.testing.assert_array_equal(frame_number(clip.frames), np.arange(120))
    assert np.abs(clip.frames.astype(int) - frames).mean() < 3.0


def test_late_range_seeks_instead_of_decoding_from_the_start(long_video):
    path, _ = long_video
    full = read_frames(path)
    late = read_frames(path, start=100, end=104)
    np.testing.assert_array_equal(late.source_frames, [100, 101, 102, 103])
    np.testing.assert_array_equal(late.frames, full.frames[100:104])
    # Keyframes every 12 frames: at most one group of pictures (plus decoder look-ahead) is decoded.
    assert full.decoded_frames == 120
    assert late.decoded_frames <= 20


def test_range_past_the_end_names_the_frame_count(long_video):
    path, _ = long_video
    with pytest.raises(Geo4DError, match="has 120 frames"):
        read_frames(path, start=118, end=125)
    with pytest.raises(Geo4DError, match="has 120 frames .*; frames 120 to the end were requested"):
        read_frames(path, start=120)
    with pytest.raises(Geo4DError, match="empty or negative"):
        read_frames(path, start=5, end=5)


def test_range_past_the_end_without_a_recorded_frame_count(tmp_path):
    frames = marked_frames(30, 32, 32)
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    info = probe(path)
    assert not info.num_frames_exact
    np.testing.assert_array_equal(frame_number(read_frames(path, 20).frames), np.arange(20, 30))
    with pytest.raises(Geo4DError, match="has only 30 frames"):
        read_frames(path, start=25, end=40)


def test_resize_covers_the_model_size_and_crops_the_centre(long_video):
    path, _ = long_video
    clip = read_frames(path, 0, 2, size=(512, 320))
    mapping = clip.mapping
    assert clip.frames.shape == (2, 320, 512, 3)
    # 64x48 scaled by 8 covers 512x320 as 512x384, cropped 32 rows top and bottom.
    assert (mapping.scale_x, mapping.scale_y, mapping.crop_left, mapping.crop_top) == (8.0, 8.0, 0, 32)
    u, v = mapping.to_source(np.array([0.0, 512.0]), np.array([0.0, 320.0]))
    np.testing.assert_allclose(u, [0, 64])
    np.testing.assert_allclose(v, [4, 44])
    # The white quadrant ends at source row 24 = output row 24 * 8 - 32 = 160 and column 32 * 8 = 256.
    image = clip.frames[0].astype(int)
    assert image[150, 240].min() > 200 and image[170, 240].max() < 60 and image[150, 270].max() < 60
    with pytest.raises(Geo4DError, match="Output size"):
        read_frames(path, 0, 2, size=(0, 320))


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_honoured(tmp_path, rotation):
    stored = marked_frames(6, 48, 64)
    path = write_rotated(tmp_path / "rotated.mp4", stored, rotation)
    info = probe(path)
    assert info.rotation == rotation % 360
    expected_size = (48, 64) if rotation in (90, -90) else (64, 48)
    assert (info.width, info.height) == expected_size
    clip = read_frames(path, 2, 4)
    assert clip.frames.shape == (2, info.height, info.width, 3)
    # FFmpeg's convention: display = stored picture turned `rotation` degrees counter-clockwise.
    expected = np.rot90(stored[2:4], k=rotation // 90, axes=(1, 2))
    assert np.abs(clip.frames.astype(int) - expected).mean() < 3.0


def test_portrait_video_resizes_to_a_transposed_model_size(tmp_path):
    path = write_rotated(tmp_path / "phone.mp4", marked_frames(3, 360, 640), -90)
    info = probe(path)
    size = choose_model_size(info.width, info.height)
    assert size == (320, 512)
    clip = read_frames(path, size=size)
    assert clip.frames.shape == (3, 512, 320, 3)
    # Turned clockwise, the stored top-left white quadrant is shown top-right.
    assert clip.frames[0, 100, 250].min() > 200 and clip.frames[0, 100, 70].max() < 60


def test_odd_sizes_are_written_and_read_back(tmp_path):
    frames = marked_frames(4, 33, 47)
    path = write_video(tmp_path / "odd.mp4", frames, fps=30)
    info = probe(path)
    assert (info.width, info.height, info.pixel_format, info.fps) == (47, 33, "yuv444p", 30.0)
    assert np.abs(read_frames(path).frames.astype(int) - frames).mean() < 2.0


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(Geo4DError, match="does not exist"):
        probe(tmp_path / "nothing.mp4")
    with pytest.raises(Geo4DError, match="not a file"):
        read_frames(tmp_path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(Geo4DError, match="cannot be opened as a video"):
        probe(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(Geo4DError, match="no video stream"):
        read_frames(path)


def test_truncated_file(long_video, tmp_path):
    path, _ = long_video
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(Geo4DError, match="damaged, incomplete or not a video"):
        read_frames(truncated)


def test_corrupt_data_in_the_middle(long_video, tmp_path):
    path, _ = long_video
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(Geo4DError, match="is damaged"):
        read_frames(corrupt)


def test_write_video_leaves_nothing_behind_on_bad_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "bad.mp4", np.zeros((2, 8, 8, 3), dtype=np.float32), fps=24)
    assert list(tmp_path.iterdir()) == []

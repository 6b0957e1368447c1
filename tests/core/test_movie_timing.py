"""Blender's movie frame rule in numbers: target timestamps, frame counts and the picture each frame shows."""

from fractions import Fraction

import numpy as np

from geo4d.core.movie_timing import MovieTiming, blender_frame_count, is_variable_rate, shown_pictures


def test_targets_round_half_away_from_zero_after_the_start():
    # 24 fps on a 1/60 s clock: 2.5 ticks per frame, so odd frames land on a half tick and round up.
    timing = MovieTiming(Fraction(24), Fraction(1, 60), start_pts=100)
    np.testing.assert_array_equal(timing.target_pts(np.arange(5)), [100, 103, 105, 108, 110])
    assert timing.frames_before(105) == 2 and timing.frames_before(106) == 3
    assert timing.frames_until_over(110, 0) == 5  # the last picture lasts one frame when unknown


def test_frame_count_follows_blenders_order_of_sources():
    # Stream duration first, rounded half up: 0.775 s at 30 fps = 23.25 frames.
    assert blender_frame_count(30.0, 0.775, 9.0, 0.0, 0.0, 20) == 23
    # Then the container's duration less the video's late start over the audio's: (1.275 - 0.5) * 24 = 18.6.
    assert blender_frame_count(24.0, None, 1.275, 0.5, 0.0, 0) == 19
    # Audio starting later than the video does not shorten it.
    assert blender_frame_count(24.0, None, 1.275, 0.5, 0.7, 0) == 31
    # Then the stream's own frame count; 0 when nothing is recorded.
    assert blender_frame_count(24.0, None, None, 0.0, 0.0, 12) == 12
    assert blender_frame_count(24.0, None, None, 0.0, 0.0, 0) == 0


def test_shown_pictures_repeat_skip_and_hold_the_last():
    timing = MovieTiming(Fraction(10), Fraction(1, 1000), start_pts=0)  # frames looked for every 100 ms
    pictures = [(pts, 0, f"p{pts}") for pts in (20, 90, 100, 150, 160, 400)]
    shown = [name for _, _, name in shown_pictures(iter(pictures), timing, 0, 7)]
    # 0 ms precedes every picture (the first is shown); 100 ms is p100 (p90 skipped); 200 and 300 ms hold
    # p160 (p150 skipped); 500 and 600 ms are past the end and hold the last picture.
    assert shown == ["p20", "p100", "p160", "p160", "p400", "p400", "p400"]
    # Without a frame count the frames end where the last picture's duration (one frame here) does.
    assert [frame for frame, _, _ in shown_pictures(iter(pictures), timing, 3, None)] == [3, 4]


def test_variable_rate_tolerates_time_base_rounding():
    assert not is_variable_rate(np.array([0, 33, 67, 100, 133, 167]))  # 30 fps in ms
    assert is_variable_rate(np.array([0, 33, 67, 100, 167, 200]))  # a dropped picture
    assert not is_variable_rate(np.array([0, 40]))

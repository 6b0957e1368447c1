"""Window plans: strides, the closing window, coverage, and clips shorter than one window."""

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.windows import plan_windows


def test_stride_four_over_48_frames():
    plan = plan_windows(48)
    assert plan.num_windows == 9
    assert plan.starts.tolist() == list(range(0, 33, 4))
    assert (np.diff(plan.frame_indices, axis=1) == 1).all()
    assert plan.frame_indices[-1, -1] == 47
    coverage = plan.coverage()
    assert coverage[:4].tolist() == [1, 1, 1, 1]
    assert (coverage[12:36] == 4).all()
    assert plan.windows_covering(13).tolist() == [0, 1, 2, 3]


def test_closing_window_ends_on_last_frame():
    plan = plan_windows(50, stride=4)
    assert plan.starts.tolist() == [0, 4, 8, 12, 16, 20, 24, 28, 32, 34]
    assert plan.frame_indices[-1].tolist() == list(range(34, 50))
    assert (plan.coverage() >= 1).all()


def test_exactly_one_window():
    plan = plan_windows(16)
    assert plan.num_windows == 1 and not plan.padded
    assert plan.frame_indices[0].tolist() == list(range(16))


def test_short_clip_is_padded_with_its_last_frame():
    plan = plan_windows(5)
    assert plan.padded and plan.num_windows == 1
    assert plan.frame_indices[0].tolist() == [0, 1, 2, 3, 4] + [4] * 11
    assert plan.coverage().tolist() == [1, 1, 1, 1, 1]


def test_bad_plans():
    with pytest.raises(Geo4DError, match="no frames"):
        plan_windows(0)
    with pytest.raises(ValueError, match="stride 0"):
        plan_windows(40, stride=0)
    with pytest.raises(ValueError, match="stride 17"):
        plan_windows(40, stride=17)

"""Numpy pictures: path plots put each path where its coordinates say, sheets lay panels out by row."""

from __future__ import annotations

import numpy as np

from geo4d.core.synthetic.figures import enlarge, path_plot, sheet, with_caption
from geo4d.core.synthetic.font import caption, text_mask

RED, BLUE = (255, 0, 0), (0, 0, 255)


def test_path_plot_draws_each_path_in_its_colour_at_its_place():
    left = np.stack([np.zeros(20), np.linspace(0, 1, 20)], axis=1)  # x = 0, y up from 0 to 1
    right = left + np.array([1.0, 0.0])
    image = path_plot([left, right], [RED, BLUE], 200, 200, margin=20)
    red = np.argwhere((image == RED).all(-1))
    blue = np.argwhere((image == BLUE).all(-1))
    assert len(red) > 100 and len(blue) > 100
    assert red[:, 1].mean() < 100 < blue[:, 1].mean()  # columns: x to the right
    # y up in the world is up in the picture: the start square sits low, the end disc high.
    assert image[175:185, 15:25].reshape(-1, 3).tolist().count(list(RED)) > 20
    assert (image[[0, -1]] == 160).all() and (image[100, 100] == 255).all()


def test_sheet_and_enlarge():
    a = np.full((4, 6, 3), 10, np.uint8)
    b = np.full((2, 3, 3), 200, np.uint8)
    big = enlarge(b, 2)
    assert big.shape == (4, 6, 3) and (big == 200).all()
    canvas = sheet([[a, big], [b]], gap=2)
    assert canvas.shape == (2 + 4 + 2 + 2 + 2, 2 + 6 + 2 + 6 + 2, 3)
    assert (
        (canvas[2:6, 2:8] == 10).all()
        and (canvas[2:6, 10:16] == 200).all()
        and (canvas[8:10, 2:5] == 200).all()
    )
    assert (canvas[0] == 255).all()


def test_font_draws_known_glyphs_and_blanks_unknown_ones():
    ink = text_mask("T1", scale=2)
    assert ink.shape == (14, 22)
    assert ink[:2, :10].all() and not ink[2:, :4].any()  # the T's bar, then nothing left of its stem
    np.testing.assert_array_equal(text_mask("ab"), text_mask("AB"))
    assert not text_mask("~").any() and text_mask("").shape == (7, 0)
    strip = caption("OK", 40, scale=1, color=RED)
    assert strip.shape == (9, 40, 3) and (strip == RED).all(-1).sum() == text_mask("OK").sum()
    labelled = with_caption(np.zeros((5, 40, 3), np.uint8), "OK", scale=1)
    assert labelled.shape == (14, 40, 3) and (labelled[9:] == 0).all()

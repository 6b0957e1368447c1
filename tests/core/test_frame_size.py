"""The network input size chosen for a video's aspect, and WIDTHxHEIGHT sizes as typed."""

from __future__ import annotations

import logging

import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.frame_size import choose_model_size, parse_size
from geo4d.core.network.config import MODEL_SIZES


def test_choose_model_size_by_aspect_and_forced(caplog):
    with caplog.at_level(logging.INFO, logger="geo4d.core.frame_size"):
        assert choose_model_size(1920, 1080) == (512, 320)
    assert "closest to 512:320" in caplog.text
    assert choose_model_size(640, 480) == (512, 384)
    assert choose_model_size(1000, 400) == (576, 256)
    assert choose_model_size(2400, 700) == (640, 192)
    assert choose_model_size(480, 640) == (384, 512)
    assert choose_model_size(1920, 1080, forced=(640, 192)) == (640, 192)
    assert all(choose_model_size(w, h) == (w, h) for w, h in MODEL_SIZES)
    with pytest.raises(Geo4DError, match="multiple of 64"):
        choose_model_size(1920, 1080, forced=(500, 320))


def test_parse_size():
    assert parse_size("512x320") == (512, 320)
    assert parse_size("33X17") == (33, 17)
    for bad in ("512", "axb", "0x10", "-5x10", "5x5x5"):
        with pytest.raises(ValueError):
            parse_size(bad)

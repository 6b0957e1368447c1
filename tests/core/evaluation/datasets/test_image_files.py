"""PyAV image I/O of the benchmark readers: 16-bit depth PNGs and colour frames round-trip."""

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets.image_files import (
    read_depth_png,
    read_rgb,
    read_uint16_png,
    write_jpeg,
    write_png,
)


def test_sixteen_bit_png_round_trips_every_value(tmp_path):
    values = np.arange(0, 65536, 7, dtype=np.uint16)[:9000].reshape(90, 100)
    path = write_png(tmp_path / "depth.png", values)
    header = path.read_bytes()
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (header[24], header[25]) == (16, 0)  # IHDR: bit depth 16, colour type greyscale
    np.testing.assert_array_equal(read_uint16_png(path), values)


def test_depth_png_is_divided_by_its_units(tmp_path):
    raw = np.array([[0, 1, 5000], [12345, 65535, 256]], dtype=np.uint16)
    path = write_png(tmp_path / "depth.png", raw)
    depth = read_depth_png(path, units_per_metre=5000.0)
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, (raw / 5000.0).astype(np.float32))
    assert depth[0, 2] == 1.0 and depth[0, 0] == 0.0


def test_colour_png_round_trips_exactly(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_rgb(write_png(tmp_path / "frame.png", image)), image)


def test_jpeg_of_flat_colours_stays_close(tmp_path):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:, :8] = (200, 30, 90)
    image[:, 8:] = (20, 180, 60)
    decoded = read_rgb(write_jpeg(tmp_path / "frame.jpg", image))
    assert decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - image).max() <= 6


def test_colour_png_is_refused_as_depth(tmp_path):
    path = write_png(tmp_path / "colour.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(Geo4DError, match="16-bit greyscale PNG"):
        read_uint16_png(path)


def test_missing_and_damaged_files_name_the_path(tmp_path):
    with pytest.raises(Geo4DError, match="missing.png.*does not exist"):
        read_rgb(tmp_path / "missing.png")
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"not a png at all")
    with pytest.raises(Geo4DError, match="damaged.png is not a readable PNG"):
        read_rgb(damaged)
    with pytest.raises(Geo4DError, match="not a PNG or JPEG"):
        read_rgb(tmp_path / "frame.bmp")

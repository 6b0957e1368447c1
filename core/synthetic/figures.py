"""Pictures drawn with numpy alone: top-down camera-path plots and sheets of image panels (uint8 RGB)."""

from __future__ import annotations

import numpy as np

from .font import caption

WHITE = (255, 255, 255)
GREY = (160, 160, 160)
SAMPLES_PER_PIXEL = 2


def fit_view(
    points: np.ndarray, width: int, height: int, margin: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """(pixels per unit, world centre [2], canvas centre [2]) that fit 2-D points [N, 2] into the canvas,
    same scale on both axes, `margin` pixels free on every side."""
    low, high = points.min(axis=0), points.max(axis=0)
    extent = np.maximum(high - low, 1e-9)
    scale = float(min((width - 2 * margin) / extent[0], (height - 2 * margin) / extent[1]))
    return scale, (low + high) / 2, np.array([width / 2, height / 2])


def draw_polyline(canvas: np.ndarray, pixels: np.ndarray, color: tuple[int, int, int], radius: int) -> None:
    """Draw a thick polyline through pixel positions [N, 2] (x right, y down) into canvas [H, W, 3] in place."""
    start, end = pixels[:-1], pixels[1:]
    lengths = np.linalg.norm(end - start, axis=1) if len(pixels) > 1 else np.zeros(0)
    count = int(max(1, np.ceil(lengths.max() * SAMPLES_PER_PIXEL))) if len(lengths) else 1
    t = np.linspace(0.0, 1.0, count)[None, :, None]
    samples = (start[:, None] + t * (end - start)[:, None]).reshape(-1, 2) if len(lengths) else pixels
    stamp(canvas, samples, color, radius)


def stamp(canvas: np.ndarray, centres: np.ndarray, color: tuple[int, int, int], radius: int) -> None:
    """Paint filled discs of `radius` pixels at positions [N, 2] (x, y) into canvas [H, W, 3] in place."""
    offsets = np.stack(
        np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1)), -1
    ).reshape(-1, 2)
    offsets = offsets[(offsets**2).sum(axis=1) <= radius * radius + radius]
    spots = (np.round(centres)[:, None, :] + offsets[None]).reshape(-1, 2).astype(np.int64)
    height, width = canvas.shape[:2]
    inside = (spots[:, 0] >= 0) & (spots[:, 0] < width) & (spots[:, 1] >= 0) & (spots[:, 1] < height)
    canvas[spots[inside, 1], spots[inside, 0]] = color


def path_plot(
    paths: list[np.ndarray], colors: list[tuple[int, int, int]], width: int, height: int, margin: int = 16
) -> np.ndarray:
    """Top-down plot [height, width, 3] uint8 of 2-D paths [T, 2] (x right, y up in the world) on white.

    Every path shares one scale; each is drawn as a line with a square at its first point and a disc at its
    last; a grey frame marks the plot's border.
    """
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    canvas[[0, -1], :] = GREY
    canvas[:, [0, -1]] = GREY
    scale, centre, middle = fit_view(np.concatenate(paths), width, height, margin)
    line = max(1, min(width, height) // 160)
    for path, color in zip(paths, colors, strict=True):
        pixels = (path - centre) * scale * np.array([1.0, -1.0]) + middle
        draw_polyline(canvas, pixels, color, line)
        first = np.round(pixels[0]).astype(np.int64)
        size = 3 * line + 1
        canvas[
            max(0, first[1] - size) : first[1] + size + 1, max(0, first[0] - size) : first[0] + size + 1
        ] = color
        stamp(canvas, pixels[-1:], color, 3 * line + 1)
    return canvas


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of [H, W, 3] by an integer factor (pixels stay sharp)."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def sheet(rows: list[list[np.ndarray]], gap: int = 6, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Panels [h, w, 3] uint8 laid out in rows (each row left-aligned, rows stacked) with `gap` pixels around."""
    row_heights = [max(panel.shape[0] for panel in row) for row in rows]
    row_widths = [sum(panel.shape[1] for panel in row) + gap * (len(row) - 1) for row in rows]
    canvas = np.empty(
        (sum(row_heights) + gap * (len(rows) + 1), max(row_widths) + 2 * gap, 3), dtype=np.uint8
    )
    canvas[:] = background
    top = gap
    for row, row_height in zip(rows, row_heights, strict=True):
        left = gap
        for panel in row:
            canvas[top : top + panel.shape[0], left : left + panel.shape[1]] = panel
            left += panel.shape[1] + gap
        top += row_height + gap
    return canvas


def with_caption(panel: np.ndarray, text: str, scale: int = 2) -> np.ndarray:
    """The panel [h, w, 3] with a strip of `text` above it: [h + 9 scale, w, 3]."""
    return np.concatenate([caption(text, panel.shape[1], scale), panel])


def text_block(lines: list[str], width: int, scale: int = 2) -> np.ndarray:
    """Lines of text on white, one strip each: [9 scale x len(lines), width, 3] uint8."""
    return np.concatenate([caption(line, width, scale) for line in lines])

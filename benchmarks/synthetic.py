"""Synthetic-scene benchmark: seconds to render and write a clip (`python benchmarks/synthetic.py`)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from geo4d.core.synthetic.render import Renderer, SceneConfig, write_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = SceneConfig(frames=args.frames, width=args.width, height=args.height, seed=args.seed)

    renderer = Renderer(config)
    started = time.perf_counter()
    for index in range(config.frames):
        renderer.render(index)
    render_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        folder = write_synthetic(Path(scratch) / "scene", config)
        total_seconds = time.perf_counter() - started
        size_mb = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6
        video_mb = (folder / "video.mp4").stat().st_size / 1e6

    print(f"synthetic scene, seed {config.seed}: {config.frames} frames at {config.width}x{config.height}")
    print(
        f"  ray casting only        {render_seconds:7.2f} s  ({1000 * render_seconds / config.frames:.0f} ms per frame)"
    )
    print(
        f"  write_synthetic total   {total_seconds:7.2f} s  (render, encode + decode video, write the result)"
    )
    print(f"  result folder           {size_mb:7.1f} MB  (video.mp4 {video_mb:.2f} MB)")


if __name__ == "__main__":
    main()

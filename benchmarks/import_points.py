"""Benchmark of importing a result into Blender: build seconds, .blend size and ms per frame change, both modes.

Targets (issue 2): streamed build under 1 s plus PLY writing at disk speed; packed build under 5 s;
a frame change under 20 ms at 100 k points. Prints figures; asserts nothing. CPU seconds are printed
beside wall seconds because a shared machine's wall times depend on its load.

    .venv/bin/python benchmarks/import_points.py [--frames 300] [--points 100000] [--changes 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.import_options import ImportOptions
from geo4d.scene_builder import import_result


def wavy_result(frames: int, points: int, seed: int = 0) -> Reconstruction:
    """A camera sliding past a wavy wall: every pixel a point, `points` pixels per frame (4:3-ish maps)."""
    width = int(round(np.sqrt(points * 4 / 3)))
    height = points // width
    rng = np.random.default_rng(seed)
    u = np.arange(width)[None, None, :] + 0.5
    v = np.arange(height)[None, :, None] + 0.5
    t = np.arange(frames)[:, None, None] / max(frames - 1, 1)
    depth = (4.0 + 0.5 * np.sin(u / 17.0 + 6 * t) * np.cos(v / 23.0)).astype(np.float32)
    cameras = np.tile(np.eye(4), (frames, 1, 1))
    cameras[:, 0, 3] = 2.0 * t[:, 0, 0]
    color = rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8)
    return Reconstruction(
        camera_to_world=cameras,
        intrinsics=Intrinsics(0.8 * width, 0.8 * width, width / 2, height / 2),
        depth=depth,
        confidence=np.ones_like(depth),
        color=color,
        fps=30.0,
    )


def frame_change_ms(
    points_object: bpy.types.Object, first: int, frames: int, changes: int
) -> tuple[float, int]:
    """Mean ms of scene.frame_set over `changes` frames spread across the range, and the last point count."""
    scene = bpy.context.scene
    targets = np.linspace(first, first + frames - 1, changes).round().astype(int)
    scene.frame_set(int(targets[-1]))  # warm-up: first evaluation builds caches
    started = time.perf_counter()
    for frame in targets:
        scene.frame_set(int(frame))
    elapsed = (time.perf_counter() - started) / len(targets) * 1000
    geometry = points_object.evaluated_get(bpy.context.evaluated_depsgraph_get()).evaluated_geometry()
    count = len(geometry.pointcloud.points) if geometry.pointcloud is not None else 0
    return elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--points", type=int, default=100_000, help="points per frame")
    parser.add_argument("--changes", type=int, default=40, help="frame changes timed per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geo4d-bench-") as temporary:
        folder = Path(temporary) / "result"
        reconstruction = wavy_result(args.frames, args.points)
        started = time.perf_counter()
        reconstruction.save(folder)
        write_seconds = time.perf_counter() - started
        ply_bytes = sum(path.stat().st_size for path in (folder / "frames").iterdir())
        per_frame = int(reconstruction.valid_mask()[0].sum())
        print(f"result: {args.frames} frames x {per_frame} points; PLY files {ply_bytes / 1e6:.0f} MB")
        print(
            f"result save (PLY + depth.npz): {write_seconds:.2f} s ({ply_bytes / 1e6 / write_seconds:.0f} MB/s PLY)"
        )
        del reconstruction
        for storage in ("STREAMED", "PACKED"):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            blend = Path(temporary) / f"{storage.lower()}.blend"
            started, cpu_started = time.perf_counter(), time.process_time()
            imported = import_result(folder, ImportOptions(storage=storage, relative_to=temporary))
            build_seconds = time.perf_counter() - started
            build_cpu = time.process_time() - cpu_started
            started = time.perf_counter()
            bpy.ops.wm.save_as_mainfile(filepath=str(blend), relative_remap=False)
            save_seconds = time.perf_counter() - started
            change_ms, shown = frame_change_ms(imported.points, 1, args.frames, args.changes)
            print(
                f"{storage.lower():8s} build {build_seconds:6.2f} s ({build_cpu:5.2f} s CPU) | save {save_seconds:5.2f} s | "
                f".blend {blend.stat().st_size / 1e6:8.2f} MB | frame change {change_ms:6.1f} ms "
                f"({shown} points shown)"
            )


if __name__ == "__main__":
    main()

"""Ray scaling: windows per second of one clip run locally, then on 1 and 2 Ray actors, and Ray's overhead.

`python benchmarks/ray_scaling.py [--frames 36] [--size 64x64] [--cpus 2] [--model tiny]` renders a synthetic
clip, reconstructs it in this process (the plain local run), then on a local Ray cluster of `--cpus` CPUs
with 1 actor (all the CPUs) and with 2 actors (half each), then locally again. It prints, per run, the windows, the seconds
of the predict stage (windows submitted to all in), windows per second, the wall time of the whole run
(model loads included) and the ratio of windows per second to the local run's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from geo4d.core.cpu import apply_openmp_defaults

apply_openmp_defaults()  # before torch starts: passive OpenMP waits, as the CLI does

from geo4d.core.cli import size_argument  # noqa: E402
from geo4d.core.reconstruction import reconstruct_to_folder  # noqa: E402
from geo4d.core.result import read_description  # noqa: E402
from geo4d.core.settings import ReconstructionSettings  # noqa: E402
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic  # noqa: E402


def timed_run(name: str, run) -> dict:
    """Run `run()` (which writes a result folder and returns it); its predict seconds and wall seconds."""
    started = time.perf_counter()
    folder = run()
    wall = time.perf_counter() - started
    description = read_description(folder)
    windows = description.settings["windows"]
    predict = description.timings["predict_s"]
    return {"run": name, "windows": windows, "predict_s": predict, "per_s": windows / predict, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=36, help="clip length (36: 6 windows at stride 4)")
    parser.add_argument("--size", type=size_argument, default=(64, 64), help="network input WxH")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--model", default="tiny", help="model setting (a name or a checkpoint)")
    parser.add_argument("--steps", type=int, default=1, help="DDIM steps per window")
    args = parser.parse_args()

    import ray

    from geo4d.core.distributed.driver import reconstruct_to_folder_on_ray

    settings = ReconstructionSettings(steps=args.steps, size=args.size, max_points_per_frame=200)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        config = SceneConfig(frames=args.frames, width=96, height=64, seed=7)
        video = write_synthetic(root / "clip", config) / VIDEO_NAME
        rows = [
            timed_run("local", lambda: reconstruct_to_folder(video, root / "local", args.model, settings))
        ]
        ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            for actors in (1, 2):
                rows.append(
                    timed_run(
                        f"ray, {actors} actor{'s' if actors > 1 else ''}",
                        lambda actors=actors: reconstruct_to_folder_on_ray(
                            video, root / f"ray{actors}", args.model, settings, "auto", actors
                        ),
                    )
                )
        finally:
            ray.shutdown()
        # Again at the end: on a shared machine the spread of the two local runs is the noise of the figures.
        rows.append(
            timed_run(
                "local, again", lambda: reconstruct_to_folder(video, root / "local", args.model, settings)
            )
        )
    local = rows[0]["per_s"]
    print(f"{args.frames} frames at {args.size[0]}x{args.size[1]}, model {args.model}, {args.cpus} CPUs")
    print(
        f"{'run':16s} {'windows':>7s} {'predict s':>10s} {'windows/s':>10s} {'wall s':>8s} {'vs local':>9s}"
    )
    for row in rows:
        print(
            f"{row['run']:16s} {row['windows']:7d} {row['predict_s']:10.1f} {row['per_s']:10.3f} "
            f"{row['wall_s']:8.1f} {row['per_s'] / local:9.2f}"
        )


if __name__ == "__main__":
    main()

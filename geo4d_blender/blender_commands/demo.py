"""`python -m geo4d demo -o demo_output`: a held-out synthetic video reconstructed with `tiny`, shown in Blender.

Makes DIR/video (video.mp4 + exact ground truth), DIR/result (the reconstruction, computed in a worker
process so that this Blender-side module never imports torch), DIR/scene.blend (keyed camera + animated
point cloud via the importer), DIR/sheet.png (video frames beside Cycles renders of the point cloud through
the recovered camera, and a top-down plot of the true and recovered camera paths) and DIR/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import Cancelled, Geo4DError
from ..core.output_folder import RESULT_LAYOUT, Layout, check_output_folder, foreign_entries, write_file

if TYPE_CHECKING:
    from ..core.synthetic.render import SceneConfig

NAME = "demo"
HELP = "reconstruct a held-out synthetic video with the built-in tiny model; write scene.blend and sheet.png"

logger = logging.getLogger(__name__)

# Seed of the demo scene: below core.train.config.TRAIN_SEED_START, so the model has never seen the scene.
DEMO_SEED = 7
DEMO_FRAMES = 48
DEMO_SIZE = (256, 160)
SHEET_FRAMES = 4
RENDER_SCALE = 2
RENDER_SAMPLES = 8
POINT_SIZE = 1.5
TRUE_PATH_COLOR = (30, 150, 60)
RECOVERED_PATH_COLOR = (230, 110, 20)
WORLD_GREY = 0.03
# The format marker in metrics.json: a demo folder whose metrics.json carries it is an earlier demo.
DEMO_FORMAT = "geo4d-demo"
VIDEO_DIR, RESULT_DIR = "video", "result"
BLEND_NAME, SHEET_NAME, METRICS_NAME = "scene.blend", "sheet.png", "metrics.json"


def demo_marker(folder: Path) -> str | tuple[str, ...]:
    """core.output_folder's marker of a demo folder: its video/ and result/ must be results of ours; a
    metrics.json of ours (written last) vouches for the scene and sheet beside it."""
    for name in (VIDEO_DIR, RESULT_DIR):
        sub = folder / name
        if sub.is_dir() and not sub.is_symlink():
            missing_marker, names = foreign_entries(sub, RESULT_LAYOUT)
            if missing_marker or names:
                return f"its {name}/ is not a Geo4D result ({missing_marker or ', '.join(names)})"
    try:
        metrics = json.loads((folder / METRICS_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ()
    if isinstance(metrics, dict) and metrics.get("format") == DEMO_FORMAT:
        return (METRICS_NAME, BLEND_NAME, SHEET_NAME)
    return ()


DEMO_LAYOUT = Layout(
    "Geo4D demo", (f"{VIDEO_DIR}/", f"{VIDEO_DIR}/*", f"{RESULT_DIR}/", f"{RESULT_DIR}/*"), demo_marker
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="folder to write")
    parser.add_argument(
        "--model", default="tiny", help="model or checkpoint to reconstruct with (default tiny)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEMO_SEED, help=f"scene seed (default {DEMO_SEED}, held out)"
    )
    parser.add_argument(
        "--frames", type=int, default=DEMO_FRAMES, help=f"video length (default {DEMO_FRAMES})"
    )
    parser.add_argument(
        "--steps", type=int, default=0, help="DDIM steps per window (default 0: the model's own, 1 for tiny)"
    )
    parser.add_argument("--python", default=None, help="Python of the worker process (default: this one)")


def make_video(folder: Path, config: SceneConfig) -> Path:
    from ..core.synthetic.render import VIDEO_NAME, write_synthetic

    started = time.perf_counter()
    write_synthetic(folder, config)
    logger.info("Synthetic video (seed %d) in %.1f s.", config.seed, time.perf_counter() - started)
    return folder / VIDEO_NAME


def reconstruct_in_worker(video: Path, output: Path, model: str, steps: int, python: str | None) -> None:
    """Run the pipeline in a worker process with a terminal progress bar; Ctrl-C cancels it cleanly."""
    from ..core.commands.reconstruct import ProgressBar
    from ..core.settings import ReconstructionSettings
    from ..core.worker.parent import WorkerProcess
    from ..core.worker.protocol import DONE, PROGRESS, ReconstructJob, progress_event

    job = ReconstructJob(str(video), str(output), model, ReconstructionSettings(steps=steps))
    bar = ProgressBar()
    worker = WorkerProcess(job.to_json(), python).start()
    try:
        while not worker.status.finished:
            for event in worker.poll():
                if event.get("type") == PROGRESS:
                    bar(progress_event(event))
            time.sleep(0.05)
    except KeyboardInterrupt:
        worker.cancel()
        worker.wait(timeout=10)
        raise Cancelled() from None
    finally:
        bar.close()
    if worker.status.state != DONE:
        raise Geo4DError(worker.status.error or worker.status.message)


def build_blend(result: Path, blend: Path):
    """A fresh scene with the imported result and the sheet's render settings, saved as `blend`; returns what
    the import made."""
    import bpy

    from ..blend_files import save_as_partial
    from ..import_options import ImportOptions
    from ..scene_builder import import_result

    bpy.ops.wm.read_factory_settings(use_empty=True)
    options = ImportOptions(point_size=POINT_SIZE, relative_to=str(blend.parent))
    imported = import_result(result, options)
    scene = bpy.context.scene
    world = bpy.data.worlds.new("Geo4D demo background")
    world.color = (WORLD_GREY, WORLD_GREY, WORLD_GREY)
    scene.world = world
    # Saved with the file: F12 in scene.blend renders what the sheet shows.
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = RENDER_SAMPLES
    scene.cycles.use_denoising = False
    scene.render.resolution_percentage = 100 * RENDER_SCALE
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    write_file(blend, lambda partial: save_as_partial(partial, blend), None, "Blender file")
    return imported


def render_frames(frames: list[int], folder: Path) -> list[np.ndarray]:
    """Renders [H, W, 3] uint8 with the scene's settings (Cycles on the CPU, few samples, see build_blend)
    through the scene camera at result frames `frames`, written to and read back from `folder`."""
    import bpy

    from ..core.evaluation.datasets.image_files import read_rgb

    scene = bpy.context.scene
    images = []
    for frame in frames:
        scene.frame_set(scene.frame_start + frame)
        scene.render.filepath = str(folder / f"render_{frame:04d}.png")
        bpy.ops.render.render(write_still=True)
        images.append(read_rgb(scene.render.filepath))
    return images


def top_down(result, truth) -> np.ndarray:
    """Plot of the true (green) and recovered (orange) camera centres seen from above (world z is up),
    the recovered path mapped onto the true one by the Sim(3) fit of the pose metrics."""
    from ..core.evaluation.metrics import umeyama
    from ..core.synthetic.figures import path_plot

    true_centres = truth.camera_to_world[:, :3, 3]
    scale, rotation, translation = umeyama(result.camera_to_world[:, :3, 3], true_centres)
    recovered = scale * result.camera_to_world[:, :3, 3] @ rotation.T + translation
    return path_plot(
        [true_centres[:, :2], recovered[:, :2]], [TRUE_PATH_COLOR, RECOVERED_PATH_COLOR], 360, 360
    )


def make_sheet(result, truth, renders: list[np.ndarray], frames: list[int], figures) -> np.ndarray:
    """Rows of (video frame the network saw, point-cloud render), then the top-down path plot beside the
    figures against the ground truth."""
    from ..core.synthetic.figures import enlarge, sheet, text_block, with_caption

    rows = [
        [
            with_caption(
                enlarge(result.color[frame], RENDER_SCALE), f"frame {result.source_frames[frame]}: video"
            ),
            with_caption(render, "recovered camera view"),
        ]
        for frame, render in zip(frames, renders, strict=True)
    ]
    plot = with_caption(top_down(result, truth), "cameras seen from above")
    lines = [
        "green: true path",
        "orange: recovered",
        "square: first frame",
        "",
        f"depth absrel {figures.abs_rel:.3f}",
        f"(constant depth {figures.constant_abs_rel:.3f})",
        f"delta<1.25 {100 * figures.delta_1_25:.1f}%",
        f"focal error {100 * figures.focal_error:.1f}%",
        f"ate {100 * figures.ate_fraction:.1f}% of path",
        f"rpe rotation {figures.rpe_rotation_deg:.2f} deg",
    ]
    return sheet(rows + [[plot, text_block(lines, 300)]])


def report(figures, timings: dict[str, float], output: Path) -> str:
    lines = [
        f"Demo figures against the ground truth ({output}):",
        f"  depth     AbsRel {figures.abs_rel:.3f}, delta<1.25 {100 * figures.delta_1_25:.1f} % "
        f"(constant-depth baseline AbsRel {figures.constant_abs_rel:.3f})",
        f"  focal     {figures.focal:.1f} px vs true {figures.true_focal:.1f} px: error {100 * figures.focal_error:.1f} %",
        f"  cameras   ATE {figures.ate:.3f} = {100 * figures.ate_fraction:.1f} % of the path length "
        f"{figures.path_length:.2f}; RPE rotation {figures.rpe_rotation_deg:.2f} deg",
        "  runtime   " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()),
        f"  files     {output / 'scene.blend'}, {output / 'sheet.png'} (left: video frame, right: points "
        "through the recovered camera; bottom: camera paths from above, green true, orange recovered)",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..core.evaluation.datasets.image_files import write_png
    from ..core.result import Reconstruction
    from ..core.synthetic.quality import quality_figures, truth_at_result
    from ..core.synthetic.render import SceneConfig
    from ..core.train.config import TRAIN_SEED_LIMIT, TRAIN_SEED_START

    output = check_output_folder(args.output, DEMO_LAYOUT, [args.model]).resolve()
    if TRAIN_SEED_START <= args.seed < TRAIN_SEED_LIMIT:
        logger.warning(
            "Seed %d is one of the training scenes' seeds: the figures will flatter the model.", args.seed
        )
    try:
        config = SceneConfig(frames=args.frames, width=DEMO_SIZE[0], height=DEMO_SIZE[1], seed=args.seed)
    except ValueError as error:
        raise Geo4DError(f"{error}. Change the option.") from error
    output.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    video = make_video(output / VIDEO_DIR, config)
    timings["video"] = time.perf_counter() - started

    stage = time.perf_counter()
    reconstruct_in_worker(video, output / RESULT_DIR, args.model, args.steps, args.python)
    timings["reconstruction"] = time.perf_counter() - stage
    result = Reconstruction.load(output / RESULT_DIR)
    truth = truth_at_result(config, result)

    stage = time.perf_counter()
    build_blend(output / RESULT_DIR, output / BLEND_NAME)
    frames = np.linspace(0, result.num_frames - 1, SHEET_FRAMES).round().astype(int).tolist()
    renders_folder = Path(tempfile.mkdtemp(prefix="geo4d-demo-renders."))
    try:
        renders = render_frames(frames, renders_folder)
    finally:
        shutil.rmtree(renders_folder, ignore_errors=True)
    figures = quality_figures(result, truth)
    sheet_image = make_sheet(result, truth, renders, frames, figures)
    write_file(output / SHEET_NAME, lambda partial: write_png(partial, sheet_image), None, "demo sheet")
    timings["scene and renders"] = time.perf_counter() - stage
    timings["total"] = time.perf_counter() - started

    summary = {
        "format": DEMO_FORMAT,
        "seed": args.seed,
        "frames": args.frames,
        "model": args.model,
        "figures": asdict(figures),
    }
    summary["timings_s"] = {name: round(seconds, 2) for name, seconds in timings.items()}
    summary["pipeline_timings_s"] = result.timings
    text = json.dumps(summary, indent=1)
    write_file(
        output / METRICS_NAME,
        lambda partial: partial.write_text(text, encoding="utf-8"),
        None,
        "demo figures",
    )
    print(report(figures, timings, output))
    sys.stdout.flush()
    return 0

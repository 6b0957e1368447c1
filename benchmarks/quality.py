"""Quality table of a model on held-out synthetic videos, beside a constant-depth and a ground-truth-modality baseline.

`python benchmarks/quality.py [--model tiny] [--seeds 101 102 103 104 105]`: each seed's 48-frame 512x320
video is reconstructed with the model and default settings (the model's own DDIM steps); the same figures
(core.synthetic.quality) are computed for (a) a constant depth with an identity camera path and a 60-degree
field of view, (b) the aligner run on the exact modalities of the same windows
(core.synthetic.simulated_predictions, noise-free): the ceiling any network can reach through this aligner, and (c)
the aligner run on those modalities after the model's own VAE (encoded, decoded): what a perfect UNet
would give with this autoencoder. Training seeds start at 1000 (core/train/config.py).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from geo4d.core.align import AlignConfig, align_windows
from geo4d.core.errors import Geo4DError
from geo4d.core.network.window_pipeline import WindowPipeline
from geo4d.core.output_folder import check_json_report, write_json_report
from geo4d.core.reconstruction import ReconstructionSettings, load_model, reconstruct
from geo4d.core.result import Intrinsics, Reconstruction
from geo4d.core.synthetic.quality import QualityFigures, quality_figures, truth_at_result
from geo4d.core.synthetic.render import SceneConfig, write_synthetic
from geo4d.core.synthetic.simulated_predictions import NOISE_FREE, simulate_window_predictions
from geo4d.core.train.config import TRAIN_SEED_START
from geo4d.core.train.data import modality_targets
from geo4d.core.windows import plan_windows

HELD_OUT_SEEDS = (101, 102, 103, 104, 105)
# The --json file's marker: an existing file is replaced only when it carries it.
REPORT_FORMAT = "geo4d-quality-benchmark"
REPORT_KIND = "quality benchmark report"
BASELINE_FOV_DEG = 60.0  # the middle of the synthetic scenes' 40-80 degree range
COLUMNS = ("abs_rel", "delta_1_25", "focal_error", "ate_fraction", "rpe_rotation_deg")
METHODS = ("model", "constant", "gt_modalities", "vae_round_trip")


def constant_baseline(truth: Reconstruction) -> Reconstruction:
    """Depth 1 everywhere, every camera at the identity, a 60-degree horizontal field of view."""
    frames = truth.num_frames
    focal = truth.width / 2 / math.tan(math.radians(BASELINE_FOV_DEG) / 2)
    return Reconstruction(
        camera_to_world=np.repeat(np.eye(4)[None], frames, axis=0),
        intrinsics=Intrinsics(focal, focal, truth.width / 2, truth.height / 2),
        depth=np.ones_like(truth.depth),
        confidence=np.ones_like(truth.depth),
        color=truth.color,
        fps=truth.fps,
        source_frames=truth.source_frames,
    )


def ground_truth_modalities(truth: Reconstruction, stride: int) -> Reconstruction:
    """The aligner's result on noise-free modalities of the pipeline's windows (the ceiling)."""
    plan = plan_windows(truth.num_frames, stride=stride)
    predictions = simulate_window_predictions(truth, plan, NOISE_FREE)
    result = align_windows(predictions, truth.color, AlignConfig(), truth.fps)
    result.source_frames = truth.source_frames
    return result


def vae_round_trip(
    truth: Reconstruction, model: WindowPipeline, stride: int, decode_batch: int
) -> Reconstruction:
    """The aligner's result on the exact modalities of the pipeline's windows after the model's VAE
    (decode_batch frames per VAE call)."""
    k = truth.intrinsics
    if (k.cx, k.cy, k.fy) != (truth.width / 2, truth.height / 2, k.fx):
        raise ValueError("the training targets assume square pixels and a centred principal point")
    plan = plan_windows(truth.num_frames, stride=stride)
    scale = model.config.vae.scale_factor
    predictions = []
    for frames in plan.frame_indices:
        maps = modality_targets(np.nan_to_num(truth.depth[frames]), truth.camera_to_world[frames], k.fx)
        with torch.inference_mode():
            means = [model.vae.encode(images.to(model.device, model.dtype)).mean.float() for images in maps]
            latents = rearrange(torch.cat(means) * scale, "(m l) c h w -> 1 (m c) l h w", m=len(maps))
            predictions.append(model.decode_latents(latents, decode_batch).to_prediction(frames))
    result = align_windows(predictions, truth.color, AlignConfig(), truth.fps)
    result.source_frames = truth.source_frames
    return result


def evaluate_seed(seed: int, model, settings: ReconstructionSettings, frames: int, scratch: Path) -> dict:
    config = SceneConfig(frames=frames, seed=seed)
    folder = write_synthetic(scratch / f"seed{seed}", config)
    started = time.perf_counter()
    result = reconstruct(folder / "video.mp4", model, settings)
    seconds = time.perf_counter() - started
    truth = truth_at_result(config, result)
    figures: dict[str, QualityFigures] = {
        "model": quality_figures(result, truth),
        "constant": quality_figures(constant_baseline(truth), truth),
        "gt_modalities": quality_figures(ground_truth_modalities(truth, settings.stride), truth),
        "vae_round_trip": quality_figures(
            vae_round_trip(truth, model, settings.stride, settings.decode_batch), truth
        ),
    }
    steps = result.settings["sampling_steps"]
    return {
        "seed": seed,
        "seconds": round(seconds, 1),
        "steps": steps,
        **{n: asdict(f) for n, f in figures.items()},
    }


def print_table(rows: list[dict]) -> None:
    header = f"{'seed':>6} {'method':<14}" + "".join(f"{name:>18}" for name in COLUMNS)
    print(header)
    for row in rows:
        for method in METHODS:
            values = "".join(f"{row[method][name]:>18.4f}" for name in COLUMNS)
            print(f"{row['seed']:>6} {method:<14}{values}")
    print("mean over seeds")
    for method in METHODS:
        means = [float(np.mean([row[method][name] for row in rows])) for name in COLUMNS]
        print(f"{'':>6} {method:<14}" + "".join(f"{value:>18.4f}" for value in means))
    model_abs_rel = np.mean([row["model"]["abs_rel"] for row in rows])
    constant_abs_rel = np.mean([row["constant"]["abs_rel"] for row in rows])
    checks = {
        "AbsRel <= half the constant baseline's": model_abs_rel <= constant_abs_rel / 2,
        "AbsRel < 0.15": model_abs_rel < 0.15,
        "focal within 15 %": np.mean([row["model"]["focal_error"] for row in rows]) < 0.15,
        "ATE < 10 % of the path": np.mean([row["model"]["ate_fraction"] for row in rows]) < 0.10,
    }
    for name, passed in checks.items():
        print(f"target {name}: {'met' if passed else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny", help="tiny (default) or a checkpoint path")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help='also write the figures to this file ({"format": "geo4d-quality-benchmark", "rows": [...]}); an '
        "existing file is replaced only when it is an earlier one of these",
    )
    args = parser.parse_args()
    if any(seed >= TRAIN_SEED_START for seed in args.seeds):
        parser.error(f"seeds from {TRAIN_SEED_START} on are training seeds; choose held-out ones")
    try:
        if args.json is not None:
            check_json_report(args.json, REPORT_FORMAT, REPORT_KIND, [args.model])  # before the work
    except Geo4DError as error:
        raise SystemExit(f"quality.py: error: {error}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = ReconstructionSettings()
    model = load_model(args.model, settings.device, settings.precision)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            rows.append(evaluate_seed(seed, model, settings, args.frames, Path(scratch)))
            print(f"seed {seed}: reconstructed in {rows[-1]['seconds']} s", flush=True)
    print(
        f"{args.model}, {args.frames} frames per video, default settings (stride {settings.stride}, "
        f"{rows[0]['steps']} DDIM steps: the model's own)"
    )
    print_table(rows)
    if args.json is not None:
        try:
            write_json_report(args.json, {"format": REPORT_FORMAT, "rows": rows}, REPORT_KIND, [args.model])
        except Geo4DError as error:
            raise SystemExit(f"quality.py: error: {error}") from None


if __name__ == "__main__":
    main()

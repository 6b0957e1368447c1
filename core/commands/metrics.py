"""`python -m geo4d metrics PRED GT`: depth and camera metrics of one result folder against another."""

from __future__ import annotations

import argparse
import json

NAME = "metrics"
HELP = "compare a result folder with a ground-truth result folder: AbsRel, delta<1.25, ATE, RPE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prediction", help="the result folder to evaluate")
    parser.add_argument("truth", help="the ground-truth result folder (same frames and depth size)")
    parser.add_argument(
        "--alignment",
        choices=("scale_shift", "scale", "none"),
        default="scale_shift",
        help="per-sequence depth alignment, an L1 fit in depth space (default scale_shift)",
    )
    parser.add_argument("--max-depth", type=float, default=None, help="ignore ground truth beyond this depth")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..errors import Geo4DError
    from ..evaluation.metrics import camera_metrics, depth_metrics
    from ..result import Reconstruction

    prediction = Reconstruction.load(args.prediction)
    truth = Reconstruction.load(args.truth)
    if prediction.depth.shape != truth.depth.shape:
        raise Geo4DError(
            f"{args.prediction} holds {prediction.num_frames} frames of {prediction.width}x{prediction.height} but "
            f"{args.truth} holds {truth.num_frames} of {truth.width}x{truth.height}. Compare results of the same clip "
            "and resolution."
        )
    if args.max_depth is not None and args.max_depth <= 0:
        raise Geo4DError(f"--max-depth {args.max_depth} must be positive.")
    depth = depth_metrics(prediction.depth, truth.depth, alignment=args.alignment, max_depth=args.max_depth)
    report = {"depth": asdict(depth), "focal_ratio": prediction.intrinsics.fx / truth.intrinsics.fx}
    if truth.num_frames >= 2:
        report["camera"] = asdict(camera_metrics(prediction.camera_to_world, truth.camera_to_world))
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"depth ({args.alignment}): AbsRel {depth.abs_rel:.4f}, delta<1.25 {100 * depth.delta_1_25:.2f} %")
    print(
        f"  over {depth.pixels} pixels, {100 * depth.coverage:.1f} % covered; scale {depth.scale:.4g}, shift {depth.shift:.4g}"
    )
    print(f"focal: {report['focal_ratio']:.4f} x the truth")
    if "camera" in report:
        camera = report["camera"]
        print(
            f"camera: ATE {camera['ate']:.4g} ({100 * camera['ate'] / max(camera['path_length'], 1e-12):.2f} % of the "
            f"path), RPE-t {camera['rpe_translation']:.4g}, RPE-rot {camera['rpe_rotation_deg']:.4f} deg"
        )
    return 0

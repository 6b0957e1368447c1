"""Video or frames in, reconstruction out: decode, window plan, the network per window (batched on CUDA),
alignment, and the result folder.

The stages report progress under the names in STAGES; a cancel check stops the work between decoded
frames, VAE calls, DDIM steps and alignment steps, and nothing is written unless the whole run succeeds.
`load_model` (core/network/loading.py) is part of this module's interface too.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .align import AlignConfig, align_windows
from .errors import Geo4DError
from .frame_size import FrameMapping, choose_model_size
from .model_choice import TINY_MODEL
from .motion_masks import motion_scores
from .network.loading import load_model
from .network.window_pipeline import WindowPipeline
from .network.window_predictor import WindowPredictor
from .out_of_memory import out_of_memory_as_error
from .output_folder import check_result_folder
from .progress import CancelCheck, ProgressCallback, ProgressEvent, Reporter
from .result import Reconstruction
from .settings import ReconstructionSettings
from .synthetic.render import SYNTHETIC_VIDEO_COMMENT
from .video import probe, read_frames, resize_frames
from .windows import plan_windows

logger = logging.getLogger(__name__)

STAGES = ("decode", "predict", "align", "save")


def _stage_progress(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """Forward a sub-step's events under the pipeline stage name; the sub-step's name goes in the message."""
    if progress is None:
        return None

    def forward(event: ProgressEvent) -> None:
        message = event.stage if not event.message else f"{event.stage}: {event.message}"
        progress(replace(event, stage=stage, message=message))

    return forward


@dataclass
class _NetworkInput:
    """Frames at the network size and where they came from (recorded in the result).

    frames: [T, H, W, 3] uint8 RGB; source_frames: [T] their indices in the source; mapping: network pixels
    to source pixels; source: the result's settings["video"] entry (width, height, rotation, fps, and the
    frames' timing for a video); warnings: what decoding found (a variable frame rate), for the result;
    synthetic: the video carries the comment tag of the synth command's videos.
    """

    frames: np.ndarray
    fps: float
    source_frames: np.ndarray
    mapping: FrameMapping
    source: dict
    source_path: str | None
    warnings: list[str] = field(default_factory=list)
    synthetic: bool = False


def reconstruct(
    video: str | Path,
    model: WindowPipeline | str | Path,
    settings: ReconstructionSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Reconstruction:
    """Reconstruct frames [start, end) of `video` with `model` (a loaded WindowPipeline or a model setting).

    Returns a Reconstruction at the network's input size: cameras in frame 0's camera frame, depth scaled
    to a median of 1, source frame indices, settings, per-stage timings ("load_s", "decode_s",
    "predict_s", "align_s" in seconds) and warnings. Raises Geo4DError on bad input, Cancelled when
    `cancel` returns True (checked between frames, VAE calls, DDIM steps and alignment steps).
    """
    settings = _checked_settings(settings)
    if not isinstance(video, str | os.PathLike):
        raise Geo4DError(f"video = {video!r} is not a file path; give the path of a video file.")
    started = time.perf_counter()
    video = Path(video)
    info = probe(video)  # an unreadable video is refused before the model loads
    model, model_name, timings = _loaded_model(model, settings)
    stage_start = time.perf_counter()
    size = choose_model_size(info.width, info.height, settings.size, sizes=model.config.input_sizes)
    with out_of_memory_as_error("decode", torch.device("cpu")):
        clip = read_frames(
            video, settings.start, settings.end, size, _stage_progress(progress, "decode"), cancel
        )
    timings["decode_s"] = round(time.perf_counter() - stage_start, 3)
    source = {
        "width": info.width,
        "height": info.height,
        "rotation": info.rotation,
        "fps": info.fps,
        **clip.timing_record(),
    }
    network_input = _NetworkInput(
        clip.frames,
        clip.fps,
        clip.source_frames,
        clip.mapping,
        source,
        str(video.resolve()),
        clip.warnings,
        synthetic=info.comment == SYNTHETIC_VIDEO_COMMENT,
    )
    return _reconstruct_input(network_input, model, model_name, settings, timings, started, progress, cancel)


def reconstruct_frames(
    frames: np.ndarray,
    fps: float,
    model: WindowPipeline | str | Path,
    settings: ReconstructionSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Reconstruction:
    """reconstruct() for frames already in memory (image sequences such as the benchmarks' frame folders).

    frames: uint8 [T, H, W, 3] RGB at any size; frames [start, end) of them are scaled to cover the network
    size and centre-cropped as a video's frames are (settings "frame_mapping" records how). fps: their frame
    rate (the network's fps conditioning). The result is what reconstruct() returns, with source_frames
    indexing `frames` and no source video.
    """
    settings = _checked_settings(settings)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise Geo4DError(
            f"Frames of dtype {frames.dtype} and shape {frames.shape} cannot be reconstructed; "
            "give uint8 RGB frames of shape [T, H, W, 3] with T >= 1."
        )
    end = len(frames) if settings.end is None else settings.end
    if end > len(frames) or settings.start >= end:
        raise Geo4DError(
            f"Frames {settings.start}..{end - 1} were requested of {len(frames)} frames. "
            "Choose a range inside them."
        )
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not 0 < fps < float("inf"):
        raise Geo4DError(f"The frame rate {fps!r} is not usable; give the frames' rate in frames per second.")
    started = time.perf_counter()
    model, model_name, timings = _loaded_model(model, settings)
    stage_start = time.perf_counter()
    height, width = frames.shape[1:3]
    size = choose_model_size(width, height, settings.size, sizes=model.config.input_sizes)
    resized, mapping = resize_frames(frames[settings.start : end], size)
    timings["decode_s"] = round(time.perf_counter() - stage_start, 3)
    source = {"width": width, "height": height, "rotation": 0, "fps": float(fps)}
    network_input = _NetworkInput(
        resized, float(fps), np.arange(settings.start, end, dtype=np.int64), mapping, source, None
    )
    return _reconstruct_input(network_input, model, model_name, settings, timings, started, progress, cancel)


def _checked_settings(settings: ReconstructionSettings | None) -> ReconstructionSettings:
    """The run's settings (defaults for None); anything else is refused before any work."""
    if settings is None:
        return ReconstructionSettings()
    if not isinstance(settings, ReconstructionSettings):
        raise Geo4DError(
            f"settings = {settings!r} is not a ReconstructionSettings; build one, "
            "e.g. ReconstructionSettings(stride=4, steps=0)."
        )
    return settings


def _loaded_model(
    model: WindowPipeline | str | Path, settings: ReconstructionSettings
) -> tuple[WindowPipeline, str, dict]:
    """The window pipeline to run (its settings checked against it), its name for the result's settings, and the
    timings so far ("load_s" if loaded)."""
    timings: dict[str, float] = {}
    if isinstance(model, WindowPipeline):
        if settings.device != "auto" and model.device.type != settings.device:
            raise Geo4DError(
                f"Device {settings.device!r} was requested, but the given model is loaded on {model.device}. "
                f"Load it with load_model(..., device={settings.device!r}) or use device 'auto'."
            )
        settings.check_model(model)
        return model, model.source or "Geo4D (loaded)", timings
    started = time.perf_counter()
    loaded = load_model(model, settings.device, settings.precision)
    timings["load_s"] = round(time.perf_counter() - started, 3)
    settings.check_model(loaded)
    return loaded, str(model), timings


def _reconstruct_input(
    network_input: _NetworkInput,
    model: WindowPipeline,
    model_name: str,
    settings: ReconstructionSettings,
    timings: dict,
    started: float,
    progress: ProgressCallback | None,
    cancel: CancelCheck | None,
) -> Reconstruction:
    """The windows, predictions and alignment shared by reconstruct() and reconstruct_frames()."""
    device = model.device
    frames = network_input.frames
    size = (frames.shape[2], frames.shape[1])
    warnings = list(network_input.warnings)
    length = model.config.unet.temporal_length
    plan = plan_windows(len(frames), length, settings.stride)
    if plan.padded:
        count = f"{plan.num_frames} frame{'s' if plan.num_frames != 1 else ''}"
        warnings.append(
            f"The clip has only {count}, fewer than the {length} of one Geo4D window: its last frame was "
            "repeated to fill the window. Expect weaker geometry; reconstruct a longer range if you can."
        )

    if model_name == TINY_MODEL and not network_input.synthetic:
        warnings.append(
            "The built-in 'tiny' model was trained on synthetic scenes only, and this footage is not one of "
            "the synth command's videos: expect cameras and depth that are badly wrong. Use the published "
            "Geo4D weights (a checkpoint) for real footage."
        )

    stage_start = time.perf_counter()
    predictor = WindowPredictor(model, settings)
    own_steps = model.config.sampling_steps
    if model.config.sampling_steps_only and predictor.steps != own_steps:
        warnings.append(
            f"This model was trained to sample in {own_steps} DDIM step{'s' if own_steps != 1 else ''} only; "
            f"{predictor.steps} steps ask it for predictions it never learned and make its geometry much worse. "
            "Set steps to 0 (the model's own)."
        )
    with out_of_memory_as_error("predict", device, settings.decode_batch):
        predictions, window_batch = predictor.predict(
            network_input.frames, network_input.fps, plan, Reporter(progress, cancel)
        )
    timings["predict_s"] = round(time.perf_counter() - stage_start, 3)

    stage_start = time.perf_counter()
    with out_of_memory_as_error("align", device):
        result = align_windows(
            predictions, frames, AlignConfig(), network_input.fps, _stage_progress(progress, "align"), cancel
        )
    timings["align_s"] = round(time.perf_counter() - stage_start, 3)
    stage_start = time.perf_counter()
    result.motion = motion_scores(
        result.camera_to_world, result.intrinsics, result.depth, result.valid_mask()
    )
    warnings += result.motion.warnings
    timings["motion_s"] = round(time.perf_counter() - stage_start, 3)
    timings["total_s"] = round(time.perf_counter() - started, 3)

    result.source_video = network_input.source_path
    result.source_frames = network_input.source_frames
    result.settings = {
        "reconstruction": {**asdict(settings), "size": list(size)},
        "model": model_name,
        "device": str(device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "windows": plan.num_windows,
        "sampling_steps": predictor.steps,
        "window_batch": window_batch,
        "video": network_input.source,
        "frame_mapping": asdict(network_input.mapping),
        **{key: value for key, value in result.settings.items() if key != "windows"},
    }
    result.timings = timings
    result.warnings = warnings + result.warnings
    logger.info(
        "Reconstructed %d frames of %s at %dx%d in %.1f s (%d windows).",
        result.num_frames,
        Path(network_input.source_path).name if network_input.source_path else "in-memory frames",
        *size,
        timings["total_s"],
        plan.num_windows,
    )
    return result


def reconstruct_to_folder(
    video: str | Path,
    output: str | Path,
    model: WindowPipeline | str | Path,
    settings: ReconstructionSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """reconstruct(), then write the result folder `output` atomically (nothing on failure or cancel).

    The PLY files keep settings.min_confidence / max_points_per_frame. `output` follows core.output_folder's
    contract, checked before the work starts: an earlier result of ours is replaced; a folder holding
    anything else, the video, the checkpoint or the current folder is refused.
    """
    settings = settings or ReconstructionSettings()
    output = check_result_folder(output, video, model)
    result = reconstruct(video, model, settings, progress, cancel)
    reporter = Reporter(progress, cancel)
    reporter.report("save", 0, 1, str(output))
    split = settings.points == "split"
    folder = result.save(output, settings.min_confidence, settings.max_points_per_frame, split)
    if progress is not None:
        progress(ProgressEvent("save", 1, 1, time.perf_counter() - reporter.started, str(folder)))
    return folder

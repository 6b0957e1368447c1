"""Video or frames in, reconstruction out: decode, window plan, Geo4D per window (batched on CUDA), alignment.

The stages report progress under the names in STAGES; a cancel check stops the work between decoded
frames, VAE calls, DDIM steps and alignment steps, and nothing is written unless the whole run succeeds.
`load_model` (core/models.py) is part of this module's interface too.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .align import AlignConfig, align_windows
from .compiled import compiled_parts
from .errors import Geo4DError, SettingError
from .frame_posteriors import FramePosteriors
from .geo4d_pipeline import DecodedWindow, Geo4D
from .limits import (
    DEVICES,
    MAX_COUNT,
    MAX_SEED,
    MAX_STEPS,
    PRECISIONS,
    check_choice,
    check_integer,
    check_model_size,
    check_number,
)
from .models import TINY_MODEL, load_model
from .out_of_memory import is_out_of_memory, out_of_memory_as_error, release_cached_memory
from .output_folder import check_result_folder
from .prediction import WindowPrediction
from .progress import CancelCheck, ProgressCallback, ProgressEvent, Reporter
from .result import Reconstruction
from .synthetic import SYNTHETIC_VIDEO_COMMENT
from .video import (
    FrameMapping,
    VideoClip,
    choose_model_size,
    probe,
    read_frames,
    resize_frames,
)
from .windows import MAX_STRIDE, STRIDE_REASON, WindowPlan, plan_windows

logger = logging.getLogger(__name__)

STAGES = ("decode", "predict", "align", "save")
# Windows per network call when window_batch is 0 (auto) on CUDA; halved on every out-of-memory error.
AUTO_CUDA_WINDOW_BATCH = 8


@dataclass(frozen=True)
class ReconstructionSettings:
    """How a video is reconstructed.

    start, end: source frame range [start, end) (end None = to the last frame). stride: frames between
    window starts (1..15: consecutive windows must share a frame; smaller = more windows, slower,
    steadier). steps: DDIM steps per window, 0 = the model's own (1 for the embedded tiny, 5 for the
    published Geo4D; the result's settings["sampling_steps"] records the steps run). seed: noise seed
    (window i uses seed + i). device: auto|cpu|cuda. precision: auto|bf16|fp16|fp32 (auto = bf16 on
    CUDA where supported, else fp16; fp32 on the CPU). size: forced network input (W, H), a multiple of
    64 each; None picks by the video's aspect among the model's input sizes.
    max_points_per_frame, min_confidence: which points the result folder's PLY files keep.
    window_batch: windows per network call (0 = auto: 1 on the CPU; on CUDA up to 8, halved whenever
    memory runs out). decode_batch: frames per VAE encode/decode call (lower it to save memory).
    compile: run the UNet and the VAEs through torch.compile (opt-in; slower first windows, see docs/speed.md).
    """

    start: int = 0
    end: int | None = None
    stride: int = 4
    steps: int = 0
    seed: int = 123
    device: str = "auto"
    precision: str = "auto"
    size: tuple[int, int] | None = None
    max_points_per_frame: int | None = None
    min_confidence: float = 0.0
    window_batch: int = 0
    decode_batch: int = 8
    compile: bool = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_integer(owner, "start", self.start, 0, MAX_COUNT)
        if self.end is not None:
            check_integer(owner, "end", self.end, self.start + 1, MAX_COUNT, " (above the start frame)")
        check_integer(owner, "stride", self.stride, 1, MAX_STRIDE, STRIDE_REASON)
        check_integer(owner, "steps", self.steps, 0, MAX_STEPS)
        check_integer(owner, "seed", self.seed, 0, MAX_SEED)
        check_choice(owner, "device", self.device, DEVICES)
        check_choice(owner, "precision", self.precision, PRECISIONS)
        if self.size is not None:
            check_model_size(owner, "size", self.size)
        if self.max_points_per_frame is not None:
            check_integer(owner, "max_points_per_frame", self.max_points_per_frame, 1, MAX_COUNT)
        check_number(owner, "min_confidence", self.min_confidence, 0.0, float("inf"), "a finite number >= 0")
        check_integer(owner, "window_batch", self.window_batch, 0, 64)
        check_integer(owner, "decode_batch", self.decode_batch, 1, 256)
        if not isinstance(self.compile, bool):
            raise SettingError(owner, "compile", self.compile, "True or False")

    def check_model(self, model: Geo4D) -> None:
        """The checks that need the loaded model, made before any frame is decoded."""
        length = model.config.unet.temporal_length
        if self.stride >= length:
            raise SettingError(
                type(self).__name__,
                "stride",
                self.stride,
                f"an integer in 1..{length - 1}: this model's windows are {length} frames long and must overlap",
            )


def _stage_progress(progress: ProgressCallback | None, stage: str) -> ProgressCallback | None:
    """Forward a sub-step's events under the pipeline stage name; the sub-step's name goes in the message."""
    if progress is None:
        return None

    def forward(event: ProgressEvent) -> None:
        message = event.stage if not event.message else f"{event.stage}: {event.message}"
        progress(replace(event, stage=stage, message=message))

    return forward


class _BatchedUNet(nn.Module):
    """The UNet seen by Geo4D.denoise for several windows at once: per-call timestep, context and fps ([1])
    are broadcast to the batch of x [B, C, L, h, w]."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, fps: torch.Tensor | None = None
    ) -> torch.Tensor:
        batch = x.shape[0]
        fps = None if fps is None else fps.expand(batch)
        return self.unet(x, timesteps.expand(batch), context.expand(batch, -1, -1), fps)


class WindowPredictor:
    """Runs the network on the windows of a plan, one or several per UNet call, with the run's settings.

    It writes out Geo4D.predict_window's steps (encode, DDIM, decode) for a batch of windows, drawing each
    window's noise exactly as predict_window does from seed + window index (so batching changes nothing),
    encoding each frame once for all the windows that hold it (FramePosteriors), and checks the cancel
    flag between every VAE call and every DDIM step.
    """

    def __init__(self, model: Geo4D, settings: ReconstructionSettings) -> None:
        self.steps = settings.steps or model.sampler.config.steps
        options = replace(
            model.options,
            sampler=replace(model.sampler.config, steps=self.steps),
            decode_batch_size=settings.decode_batch,
        )
        parts = (_BatchedUNet(model.unet), model.vae, model.pointmap_vae)
        self.model = Geo4D(
            model.config, *(compiled_parts(*parts) if settings.compile else parts), model.context, options
        )
        self.settings = settings
        self.device = model.device

    def initial_batch(self) -> int:
        if self.settings.window_batch:
            return self.settings.window_batch
        return AUTO_CUDA_WINDOW_BATCH if self.device.type == "cuda" else 1

    def predict(
        self, clip: VideoClip | _NetworkInput, plan: WindowPlan, reporter: Reporter
    ) -> tuple[list[WindowPrediction], int]:
        """Every window of `plan` over the clip's frames (its frames [T, H, W, 3] uint8 and fps), and the window batch that fitted in memory."""
        batch = min(self.initial_batch(), plan.num_windows)
        posteriors = FramePosteriors(self.model, clip.frames, self.model.options.decode_batch_size)
        predictions: list[WindowPrediction] = []
        reporter.report("predict", 0, plan.num_windows, f"{plan.num_windows} windows")
        while len(predictions) < plan.num_windows:
            windows = list(range(len(predictions), min(len(predictions) + batch, plan.num_windows)))
            try:
                predictions += self.predict_batch(clip, plan, windows, posteriors, reporter)
                ran_out = False
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                if not is_out_of_memory(error) or batch == 1:
                    raise
                ran_out = True
            if ran_out:  # outside the except block, whose traceback still holds the failed batch's tensors
                release_cached_memory(self.device)
                batch //= 2
                logger.warning("Out of memory with %d windows per call; retrying with %d.", 2 * batch, batch)
                continue
            reporter.report("predict", len(predictions), plan.num_windows, f"window {windows[-1] + 1}")
        return predictions, batch

    def predict_batch(
        self,
        clip: VideoClip | _NetworkInput,
        plan: WindowPlan,
        windows: list[int],
        posteriors: FramePosteriors,
        reporter: Reporter,
    ) -> list[WindowPrediction]:
        """The predictions of `windows` (indices into the plan), their UNet passes batched together; each
        frame's VAE posterior comes from `posteriors` (the clip's frames, each encoded once)."""
        model = self.model
        total = plan.num_windows
        label = (
            f"window {windows[0] + 1}" + (f"-{windows[-1] + 1}" if len(windows) > 1 else "") + f" of {total}"
        )

        def step(event: ProgressEvent) -> None:
            reporter.report("predict", windows[0], total, f"{label}, DDIM step {event.done}/{event.total}")

        down = model.config.vae.downsampling
        latent_size = (clip.frames.shape[1] // down, clip.frames.shape[2] // down)
        length = plan.length
        initial, c_concat = [], []
        with torch.inference_mode():
            for window in windows:
                generator = torch.Generator("cpu").manual_seed(self.settings.seed + window)
                initial.append(
                    torch.randn(
                        (1, model.config.unet.out_channels, length, *latent_size), generator=generator
                    )
                )
                posterior = None
                if model.options.sample_posterior:
                    posterior_shape = (length, model.config.vae.latent_channels, *latent_size)
                    posterior = torch.randn(posterior_shape, generator=generator)
                mean, std = posteriors.moments(plan.frame_indices[window], reporter)
                c_concat.append(model.sample_latents(mean, std, posterior))  # [1, 4, L, h, w]
            latents = model.denoise(
                torch.cat(c_concat), clip.fps, torch.cat(initial), Reporter(step, reporter.cancel)
            )
            return [
                self._decode(latents[i : i + 1], plan.frame_indices[window], reporter)
                for i, window in enumerate(windows)
            ]

    def _decode(self, latents: torch.Tensor, frame_indices, reporter: Reporter) -> WindowPrediction:
        """One window's [1, 16, L, h, w] latents decoded a few frames at a time (decode_batch VAE frames per
        chunk over the four modalities), checking the cancel flag between chunks."""
        chunk = max(1, self.model.options.decode_batch_size // 4)
        pieces = []
        for first in range(0, latents.shape[2], chunk):
            reporter.check_cancel()
            pieces.append(self.model.decode_latents(latents[:, :, first : first + chunk]))

        joined = {
            field.name: torch.cat([getattr(piece, field.name) for piece in pieces])
            for field in fields(DecodedWindow)
        }
        return DecodedWindow(**joined).to_prediction(frame_indices)


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
    model: Geo4D | str | Path,
    settings: ReconstructionSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Reconstruction:
    """Reconstruct frames [start, end) of `video` with `model` (a loaded Geo4D or a model setting).

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
    model: Geo4D | str | Path,
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


def _loaded_model(model: Geo4D | str | Path, settings: ReconstructionSettings) -> tuple[Geo4D, str, dict]:
    """The Geo4D to run (its settings checked against it), its name for the result's settings, and the
    timings so far ("load_s" if loaded)."""
    timings: dict[str, float] = {}
    if isinstance(model, Geo4D):
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
    model: Geo4D,
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
        predictions, window_batch = predictor.predict(network_input, plan, Reporter(progress, cancel))
    timings["predict_s"] = round(time.perf_counter() - stage_start, 3)

    stage_start = time.perf_counter()
    with out_of_memory_as_error("align", device):
        result = align_windows(
            predictions, frames, AlignConfig(), network_input.fps, _stage_progress(progress, "align"), cancel
        )
    timings["align_s"] = round(time.perf_counter() - stage_start, 3)
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
    model: Geo4D | str | Path,
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
    folder = result.save(output, settings.min_confidence, settings.max_points_per_frame)
    if progress is not None:
        progress(ProgressEvent("save", 1, 1, time.perf_counter() - reporter.started, str(folder)))
    return folder

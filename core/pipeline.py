"""Video in, reconstruction out: decode, window plan, Geo4D per window (batched on CUDA), alignment, result.

The stages report progress under the names in STAGES; a cancel check stops the work between DDIM steps,
decoded frames and alignment steps, and nothing is written unless the whole run succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from .align import AlignConfig, align_windows
from .errors import Geo4DError
from .geo4d_pipeline import Geo4D
from .model.checkpoint import MODEL_SENTINELS, read_torch_checkpoint
from .model.config import NetworkConfig
from .model.vae import uncertainty_weight
from .prediction import WindowPrediction
from .progress import CancelCheck, ProgressCallback, ProgressEvent, Reporter
from .result import JSON_NAME, Reconstruction
from .video import MAX_MODEL_SIDE, MODEL_SIZE_MULTIPLE, VideoClip, choose_model_size, probe, read_frames
from .windows import WINDOW_LENGTH, WindowPlan, plan_windows

logger = logging.getLogger(__name__)

STAGES = ("decode", "predict", "align", "save")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TINY_MODEL = "tiny"
TINY_WEIGHTS = Path(__file__).parent / "weights" / "geo4d-tiny.safetensors"
PUBLISHED_VAE_NAME = "vae.ckpt"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
# Windows per network call when window_batch is 0 (auto) on CUDA; halved on every out-of-memory error.
AUTO_CUDA_WINDOW_BATCH = 8
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class ReconstructionSettings:
    """How a video is reconstructed.

    start, end: source frame range [start, end) (end None = to the last frame). stride: frames between
    window starts (1..16; smaller = more windows, slower, steadier). steps: DDIM steps per window. seed:
    noise seed (window i uses seed + i). device: auto|cpu|cuda. precision: auto|bf16|fp16|fp32 (auto =
    bf16 on CUDA where supported, else fp16; fp32 on the CPU). size: forced network input (W, H), a
    multiple of 64 each; None picks by the video's aspect among the model's input sizes.
    max_points_per_frame, min_confidence: which points the result folder's PLY files keep.
    window_batch: windows per network call (0 = auto: 1 on the CPU; on CUDA up to 8, halved whenever
    memory runs out). decode_batch: frames per VAE encode/decode call (lower it to save memory).
    """

    start: int = 0
    end: int | None = None
    stride: int = 4
    steps: int = 5
    seed: int = 123
    device: str = "auto"
    precision: str = "auto"
    size: tuple[int, int] | None = None
    max_points_per_frame: int | None = None
    min_confidence: float = 0.0
    window_batch: int = 0
    decode_batch: int = 8

    def __post_init__(self) -> None:
        ranges = {
            "start": (self.start, 0, 1 << 31),
            "stride": (self.stride, 1, WINDOW_LENGTH),
            "steps": (self.steps, 1, 1000),
            "seed": (self.seed, 0, MAX_SEED),
            "window_batch": (self.window_batch, 0, 64),
            "decode_batch": (self.decode_batch, 1, 256),
        }
        if self.end is not None:
            ranges["end"] = (self.end, self.start + 1, 1 << 31)
        if self.max_points_per_frame is not None:
            ranges["max_points_per_frame"] = (self.max_points_per_frame, 1, 1 << 31)
        for name, (value, low, high) in ranges.items():
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(
                    f"ReconstructionSettings.{name} = {value!r}; allowed integers {low}..{high}."
                )
        if self.device not in DEVICES:
            raise ValueError(
                f"ReconstructionSettings.device = {self.device!r}; allowed {', '.join(DEVICES)}."
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"ReconstructionSettings.precision = {self.precision!r}; allowed {', '.join(PRECISIONS)}."
            )
        if not (isinstance(self.min_confidence, int | float) and 0.0 <= self.min_confidence < float("inf")):
            raise ValueError(
                f"ReconstructionSettings.min_confidence = {self.min_confidence!r}; allowed a number >= 0."
            )
        if self.size is not None and not (
            len(self.size) == 2
            and all(
                isinstance(v, int) and 0 < v <= MAX_MODEL_SIDE and v % MODEL_SIZE_MULTIPLE == 0
                for v in self.size
            )
        ):
            raise ValueError(
                f"ReconstructionSettings.size = {self.size!r}; allowed (W, H) multiples of "
                f"{MODEL_SIZE_MULTIPLE} up to {MAX_MODEL_SIDE}, e.g. (512, 320)."
            )


def resolve_device(device: str = "auto") -> torch.device:
    """torch device of a setting: auto = CUDA when available; Geo4DError when CUDA is asked for but absent."""
    if device not in DEVICES:
        raise Geo4DError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise Geo4DError(
            "CUDA was requested, but this PyTorch sees no usable CUDA GPU "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}). Use device 'cpu' or 'auto', "
            "or install a CUDA build of PyTorch that matches your driver."
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Weights' dtype of a precision setting on a device; fp16 is refused on the CPU (too slow, inexact)."""
    if precision not in PRECISIONS:
        raise Geo4DError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise Geo4DError("Precision fp16 needs a CUDA GPU; on the CPU use fp32 (or bf16).")
    return DTYPES[precision]


def model_files(model: str | Path) -> tuple[Path, Path | None]:
    """(weights file, point-map VAE file or None) named by a model setting.

    "tiny": the trained model shipped in the package. A `.safetensors` path: our converted format (one
    file). A published `model.ckpt`: its `vae.ckpt` is taken from beside it, or given explicitly as
    "model.ckpt,vae.ckpt". Anything else that is neither a name nor an existing file is an unknown model.
    """
    text = str(model)
    if isinstance(model, str) and text == TINY_MODEL:
        if not TINY_WEIGHTS.is_file():
            raise Geo4DError(
                f"The built-in model 'tiny' is missing from this installation (expected {TINY_WEIGHTS}). "
                "Reinstall geo4d, train it with `python -m geo4d train`, or give a checkpoint file instead."
            )
        return TINY_WEIGHTS, None
    weights_text, _, vae_text = text.partition(",")
    weights = Path(weights_text).expanduser()
    looks_like_path = isinstance(model, Path) or bool(vae_text) or weights.suffix in CHECKPOINT_SUFFIXES
    looks_like_path = looks_like_path or "/" in weights_text or "\\" in weights_text
    if not weights.exists() and not looks_like_path:
        raise Geo4DError(
            f"Unknown model {text!r}. The built-in model is '{TINY_MODEL}'; otherwise give the path of a checkpoint: "
            "a .safetensors made by `python -m geo4d convert-checkpoint`, or the published Geo4D model.ckpt."
        )
    if not weights.is_file():
        raise Geo4DError(
            f"Checkpoint not found: {weights}. Check the path to your copy of the Geo4D weights."
        )
    if weights.suffix == ".safetensors":
        return weights, None
    vae = Path(vae_text).expanduser() if vae_text else weights.with_name(PUBLISHED_VAE_NAME)
    if not vae.is_file():
        raise Geo4DError(
            f"The point-map VAE {vae} was not found. The published model needs both files: put vae.ckpt beside "
            f"model.ckpt, or give both as 'model.ckpt,vae.ckpt'."
        )
    return weights, vae


def published_config(model_path: Path) -> NetworkConfig:
    """The preset (full or tiny widths) of a published-format model.ckpt, recognised by its UNet input conv."""
    state = read_torch_checkpoint(model_path)
    key = MODEL_SENTINELS[0]
    if key not in state:
        raise Geo4DError(f"{model_path} is not a Geo4D model.ckpt: it lacks the key {key}.")
    width = state[key].shape[0]
    for name in ("full", "tiny"):
        config = NetworkConfig.preset(name)
        if config.unet.model_channels == width:
            return config
    raise Geo4DError(
        f"{model_path} has a UNet {width} channels wide; this geo4d knows the published network (320) and the "
        "tiny one (32). Use the published Geo4D weights."
    )


def load_model(model: str | Path, device: str = "auto", precision: str = "auto") -> Geo4D:
    """The Geo4D predictor named by `model` (see model_files), on `device` in `precision`."""
    weights, vae = model_files(model)
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision, torch_device)
    started = time.perf_counter()
    with out_of_memory_as_error("load", torch_device, None):
        if vae is None:
            network = Geo4D.from_checkpoint(weights, device=torch_device, dtype=dtype)
        else:
            config = published_config(weights)
            network = Geo4D.from_checkpoint(weights, vae, config=config, device=torch_device, dtype=dtype)
    logger.info(
        "Loaded %s on %s (%s) in %.1f s.", weights.name, torch_device, dtype, time.perf_counter() - started
    )
    return network


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError, Python's MemoryError and the CPU allocator's failure."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def out_of_memory_message(stage: str, device: torch.device, settings: ReconstructionSettings | None) -> str:
    """What ran out of memory and which setting lowers the memory that stage needs."""
    where = f"Out of memory on {'the GPU' if device.type == 'cuda' else 'the CPU'}"
    if stage == "load":
        return (
            f"{where} while loading the model. Use precision bf16 or fp16 (half the memory of fp32) on a GPU, "
            "close other programs using the GPU, or use device 'cpu'."
        )
    decode_batch = settings.decode_batch if settings else ReconstructionSettings.decode_batch
    if stage == "predict":
        return (
            f"{where} while predicting windows, already one window at a time. Lower decode_batch (now "
            f"{decode_batch} frames per VAE call) or use precision bf16/fp16 on a GPU; a smaller --size "
            "lowers it most (at some loss of detail)."
        )
    if stage == "decode":
        return (
            f"{where} while decoding the video. Reconstruct a shorter frame range (--start/--end) or force a "
            "smaller network input (--size)."
        )
    return (
        f"{where} while aligning the windows. Reconstruct a shorter frame range (--start/--end) or use a larger "
        "stride (fewer windows to hold)."
    )


@contextmanager
def out_of_memory_as_error(
    stage: str, device: torch.device, settings: ReconstructionSettings | None
) -> Iterator[None]:
    """Turn an out-of-memory failure inside the block into a Geo4DError naming the setting to lower."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        _release_cached_memory(device)
        raise Geo4DError(out_of_memory_message(stage, device, settings)) from error


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


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
    and checks the cancel flag between every VAE call and every DDIM step.
    """

    def __init__(self, model: Geo4D, settings: ReconstructionSettings) -> None:
        options = replace(
            model.options,
            sampler=replace(model.options.sampler, steps=settings.steps),
            decode_batch_size=settings.decode_batch,
        )
        self.model = Geo4D(
            model.config, _BatchedUNet(model.unet), model.vae, model.pointmap_vae, model.context, options
        )
        self.settings = settings
        self.device = model.device

    def initial_batch(self) -> int:
        if self.settings.window_batch:
            return self.settings.window_batch
        return AUTO_CUDA_WINDOW_BATCH if self.device.type == "cuda" else 1

    def predict(
        self, clip: VideoClip, plan: WindowPlan, reporter: Reporter
    ) -> tuple[list[WindowPrediction], int]:
        """Every window of `plan` over the clip's frames, and the window batch that fitted in memory."""
        batch = min(self.initial_batch(), plan.num_windows)
        predictions: list[WindowPrediction] = []
        reporter.report("predict", 0, plan.num_windows, f"{plan.num_windows} windows")
        while len(predictions) < plan.num_windows:
            windows = list(range(len(predictions), min(len(predictions) + batch, plan.num_windows)))
            try:
                predictions += self.predict_batch(clip, plan, windows, reporter)
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                if not is_out_of_memory(error) or batch == 1:
                    raise
                _release_cached_memory(self.device)
                batch //= 2
                logger.warning("Out of memory with %d windows per call; retrying with %d.", 2 * batch, batch)
                continue
            reporter.report("predict", len(predictions), plan.num_windows, f"window {windows[-1] + 1}")
        return predictions, batch

    def predict_batch(
        self, clip: VideoClip, plan: WindowPlan, windows: list[int], reporter: Reporter
    ) -> list[WindowPrediction]:
        """The predictions of `windows` (indices into the plan), their UNet passes batched together."""
        model = self.model
        total = plan.num_windows
        label = (
            f"window {windows[0] + 1}" + (f"-{windows[-1] + 1}" if len(windows) > 1 else "") + f" of {total}"
        )

        def step(event: ProgressEvent) -> None:
            reporter.report("predict", windows[0], total, f"{label}, DDIM step {event.done}/{event.total}")

        frames = torch.from_numpy(clip.frames[plan.frame_indices[windows]]).to(model.device)
        images = (
            rearrange(frames, "b l h w c -> b l c h w").float() / 127.5 - 1.0
        )  # [B, L, 3, H, W] in [-1, 1]
        down = model.config.vae.downsampling
        latent_size = (images.shape[-2] // down, images.shape[-1] // down)
        length = plan.length
        chunk = model.options.decode_batch_size
        initial, c_concat = [], []
        with torch.inference_mode():
            for window, window_images in zip(windows, images, strict=True):
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
                parts = []
                for first in range(0, length, chunk):
                    reporter.check_cancel()
                    noise = None if posterior is None else posterior[first : first + chunk]
                    parts.append(model.encode_frames(window_images[first : first + chunk], noise))
                c_concat.append(torch.cat(parts, dim=2))  # [1, 4, L, h, w]
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

        def joined(name: str) -> torch.Tensor:
            return torch.cat([getattr(piece, name) for piece in pieces])

        return WindowPrediction(
            frames=torch.from_numpy(frame_indices),
            point_map=joined("point_map"),
            point_confidence=uncertainty_weight(joined("point_uncertainty")),
            disparity=joined("disparity"),
            ray_direction=joined("ray_direction"),
            ray_moment=joined("ray_moment"),
        )


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
    `cancel` returns True (checked between frames, DDIM steps and alignment steps).
    """
    settings = settings or ReconstructionSettings()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    model_name = "Geo4D (loaded)" if isinstance(model, Geo4D) else str(model)
    if not isinstance(model, Geo4D):
        model = load_model(model, settings.device, settings.precision)
        timings["load_s"] = round(time.perf_counter() - started, 3)
    elif settings.device != "auto" and model.device.type != settings.device:
        raise Geo4DError(
            f"Device {settings.device!r} was requested, but the given model is loaded on {model.device}. Load it "
            f"with load_model(..., device={settings.device!r}) or use device 'auto'."
        )
    device = model.device
    video = Path(video)
    warnings: list[str] = []

    stage_start = time.perf_counter()
    info = probe(video)
    size = choose_model_size(info.width, info.height, settings.size, sizes=model.config.input_sizes)
    with out_of_memory_as_error("decode", torch.device("cpu"), settings):
        clip = read_frames(
            video, settings.start, settings.end, size, _stage_progress(progress, "decode"), cancel
        )
    timings["decode_s"] = round(time.perf_counter() - stage_start, 3)
    length = model.config.unet.temporal_length
    plan = plan_windows(len(clip.frames), length, min(settings.stride, length))
    if plan.padded:
        warnings.append(
            f"The clip has only {plan.num_frames} frame{'s' if plan.num_frames != 1 else ''}, fewer than the {length} of one Geo4D window: its last "
            "frame was repeated to fill the window. Expect weaker geometry; reconstruct a longer range if you can."
        )

    stage_start = time.perf_counter()
    predictor = WindowPredictor(model, settings)
    with out_of_memory_as_error("predict", device, settings):
        predictions, window_batch = predictor.predict(clip, plan, Reporter(progress, cancel))
    timings["predict_s"] = round(time.perf_counter() - stage_start, 3)

    stage_start = time.perf_counter()
    with out_of_memory_as_error("align", device, settings):
        result = align_windows(
            predictions, clip.frames, AlignConfig(), clip.fps, _stage_progress(progress, "align"), cancel
        )
    timings["align_s"] = round(time.perf_counter() - stage_start, 3)
    timings["total_s"] = round(time.perf_counter() - started, 3)

    result.source_video = str(video.resolve())
    result.source_frames = clip.source_frames
    result.settings = {
        "reconstruction": {**asdict(settings), "size": list(size)},
        "model": model_name,
        "device": str(device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "windows": plan.num_windows,
        "window_batch": window_batch,
        "video": {"width": info.width, "height": info.height, "rotation": info.rotation, "fps": info.fps},
        "frame_mapping": asdict(clip.mapping),
        **{key: value for key, value in result.settings.items() if key != "windows"},
    }
    result.timings = timings
    result.warnings = warnings + result.warnings
    logger.info(
        "Reconstructed %d frames of %s at %dx%d in %.1f s (%d windows).",
        result.num_frames,
        video.name,
        *size,
        timings["total_s"],
        plan.num_windows,
    )
    return result


def check_output_folder(output: Path) -> None:
    """Refuse, before any work, an output that Reconstruction.save would refuse after it."""
    if output.exists() and not output.is_dir():
        raise Geo4DError(f"{output} is a file, not a folder. Choose a folder for the result.")
    if output.is_dir() and not (output / JSON_NAME).exists() and any(output.iterdir()):
        raise Geo4DError(
            f"{output} exists and is not a Geo4D result; refusing to overwrite it. Choose another output folder."
        )


def reconstruct_to_folder(
    video: str | Path,
    output: str | Path,
    model: Geo4D | str | Path,
    settings: ReconstructionSettings | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> Path:
    """reconstruct(), then write the result folder `output` atomically (nothing on failure or cancel).

    The PLY files keep settings.min_confidence / max_points_per_frame; an existing result at `output` is
    replaced, any other non-empty folder refused (before the work starts).
    """
    settings = settings or ReconstructionSettings()
    output = Path(output)
    check_output_folder(output)
    result = reconstruct(video, model, settings, progress, cancel)
    reporter = Reporter(progress, cancel)
    reporter.report("save", 0, 1, str(output))
    folder = result.save(output, settings.min_confidence, settings.max_points_per_frame)
    if progress is not None:
        progress(ProgressEvent("save", 1, 1, time.perf_counter() - reporter.started, str(folder)))
    return folder

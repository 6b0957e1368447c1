"""The reconstruction settings: the one home of each setting's default, limits and help text (no torch, no av).

The command line's options (core/commands/reconstruct.py), the Blender properties and the strip job
(geo4d_blender/setting_properties.py, strip_job.py) and the worker's job JSON (core/worker/protocol.py) are
all derived from ReconstructionSettings and the SettingSpec of each of its fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import SettingError
from .limits import (
    MAX_COUNT,
    MAX_SEED,
    MODEL_SIZE_MULTIPLE,
    check_choice,
    check_integer,
    check_model_size,
    check_number,
)

MAX_STEPS = 1000
# Frames per window of the Geo4D network (its UNet's temporal length).
WINDOW_LENGTH = 16
# The aligner chains windows through the frames they share, so consecutive windows must overlap: the
# stride stays below the window length. Every entry point (command line, Python, Blender) checks this
# here, with the worker-side check against the loaded model (check_model).
MAX_STRIDE = WINDOW_LENGTH - 1
STRIDE_REASON = f" (consecutive {WINDOW_LENGTH}-frame windows must share a frame to be aligned)"
# The kinds of setting a SettingSpec describes; each surface maps a kind to its own widget or option type.
INTEGER, NUMBER, CHOICE, SIZE, SWITCH = "integer", "number", "choice", "size", "switch"


@dataclass(frozen=True)
class Choice:
    """One allowed value of a choice setting: the value, its label and what it means (Blender's enum item)."""

    name: str
    label: str
    description: str


DEVICE_CHOICES = (
    Choice("auto", "Auto", "CUDA when the worker's torch has a GPU, else the CPU"),
    Choice("cpu", "CPU", "Always the CPU (slow, works everywhere)"),
    Choice("cuda", "CUDA", "An NVIDIA GPU; fails clearly when the worker's torch has none"),
)
POINT_CHOICES = (
    Choice("full", "Every Frame", "Every frame's PLY holds all its points"),
    Choice(
        "split",
        "Set and Moving",
        "static.ply holds the fused static set and the frames only what moves (docs/static-dynamic.md)",
    ),
)
PRECISION_CHOICES = (
    Choice("auto", "Auto", "bf16 on GPUs that support it, fp16 on other GPUs, fp32 on the CPU"),
    Choice("bf16", "bfloat16", "Half memory; needs a recent GPU"),
    Choice("fp16", "float16", "Half memory on any CUDA GPU"),
    Choice("fp32", "float32", "Full precision (twice the memory)"),
)
DEVICES = tuple(choice.name for choice in DEVICE_CHOICES)
PRECISIONS = tuple(choice.name for choice in PRECISION_CHOICES)


@dataclass(frozen=True)
class SettingSpec:
    """What one setting allows and how every surface describes it.

    kind: INTEGER, NUMBER (a finite float), CHOICE, SIZE (a network input (width, height)) or SWITCH (on or
    off: True or False).
    label: its name in a user interface ("Stride"); help: one line saying what it does.
    low, high: the inclusive limits of a number; why: appended to the range in a refusal.
    choices: the allowed values of a CHOICE. none_means: for a setting that may be None, what None does.
    """

    kind: str
    label: str
    help: str
    low: float | None = None
    high: float | None = None
    why: str = ""
    choices: tuple[Choice, ...] = ()
    none_means: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The allowed values of a CHOICE."""
        return tuple(choice.name for choice in self.choices)

    @property
    def allowed(self) -> str:
        """A number's limits in words, as a refusal and the command line's help say them."""
        if self.high == math.inf:
            return f"a finite number >= {self.low:g}"
        return f"{self.low:g}-{self.high:g}"

    def check(self, owner: str, name: str, value: object) -> None:
        """Raise SettingError (naming `owner`.`name`) unless `value` is allowed; None only where it means something."""
        if value is None and self.none_means:
            return
        if self.kind == INTEGER:
            check_integer(owner, name, value, int(self.low), int(self.high), self.why)
        elif self.kind == NUMBER:
            check_number(owner, name, value, self.low, self.high, self.allowed)
        elif self.kind == CHOICE:
            check_choice(owner, name, value, self.names)
        elif self.kind == SWITCH:
            if not isinstance(value, bool):
                raise SettingError(owner, name, value, "True or False")
        else:
            check_model_size(owner, name, value)


def setting(default: Any, spec: SettingSpec) -> Any:
    """A dataclass field with its default and its SettingSpec (read back with spec_of)."""
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class ReconstructionSettings:
    """How a video is reconstructed; each field's SettingSpec says what it does and allows (spec_of).

    steps 0 runs the model's own number of DDIM steps (the result's settings["sampling_steps"] records the
    steps run); seed: window i draws its noise from seed + i; precision auto is bf16 on CUDA where supported,
    else fp16, and fp32 on the CPU. max_points_per_frame and min_confidence choose which points the result
    folder's PLY files keep; points "split" fuses the static set into static.ply and keeps only the moving
    points in the frames. compile (off by default) runs the network through torch.compile (docs/speed.md).
    """

    start: int = setting(0, SettingSpec(INTEGER, "Start", "first source frame", 0, MAX_COUNT))
    end: int | None = setting(
        None,
        SettingSpec(
            INTEGER,
            "End",
            "source frame to stop before",
            1,
            MAX_COUNT,
            " (above the start frame)",
            none_means="to the last frame",
        ),
    )
    stride: int = setting(
        4,
        SettingSpec(
            INTEGER,
            "Stride",
            f"frames between the starts of consecutive {WINDOW_LENGTH}-frame windows (smaller: slower, steadier)",
            1,
            MAX_STRIDE,
            STRIDE_REASON,
        ),
    )
    steps: int = setting(
        0,
        SettingSpec(
            INTEGER,
            "Steps",
            "denoising (DDIM) steps per window; 0 = the model's own (1 for tiny, 5 for the published Geo4D)",
            0,
            MAX_STEPS,
        ),
    )
    seed: int = setting(123, SettingSpec(INTEGER, "Seed", "noise seed of the diffusion sampler", 0, MAX_SEED))
    device: str = setting(
        "auto", SettingSpec(CHOICE, "Device", "where the network runs", choices=DEVICE_CHOICES)
    )
    precision: str = setting(
        "auto", SettingSpec(CHOICE, "Precision", "number format of the network", choices=PRECISION_CHOICES)
    )
    size: tuple[int, int] | None = setting(
        None,
        SettingSpec(
            SIZE,
            "Input Size",
            f"force the network input's width and height in pixels (multiples of {MODEL_SIZE_MULTIPLE})",
            none_means="chosen by the video's aspect among the model's input sizes",
        ),
    )
    max_points_per_frame: int | None = setting(
        None,
        SettingSpec(
            INTEGER,
            "Points per Frame",
            "most points kept per frame in the PLY files, evenly spread",
            1,
            MAX_COUNT,
            none_means="every valid pixel",
        ),
    )
    min_confidence: float = setting(
        0.0,
        SettingSpec(NUMBER, "Minimum Confidence", "drop points below this confidence", 0.0, math.inf),
    )
    window_batch: int = setting(
        0,
        SettingSpec(
            INTEGER,
            "Window Batch",
            "windows per network call (0 = auto: 1 on the CPU; on CUDA up to 8, halved whenever memory runs out)",
            0,
            64,
        ),
    )
    decode_batch: int = setting(
        8,
        SettingSpec(
            INTEGER, "Decode Batch", "frames per VAE encode/decode call (lower it to save memory)", 1, 256
        ),
    )
    points: str = setting(
        "full",
        SettingSpec(
            CHOICE,
            "Points",
            "full: every frame whole; split: one fused static cloud plus the moving points per frame",
            choices=POINT_CHOICES,
        ),
    )
    compile: bool = setting(
        False,
        SettingSpec(
            SWITCH,
            "Compile",
            "torch.compile the UNet and the VAEs (opt-in: minutes of compiling before the first windows; "
            "see docs/speed.md)",
        ),
    )

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for item in fields(self):
            spec_of(item.name).check(owner, item.name, getattr(self, item.name))
        if self.end is not None and self.end <= self.start:
            spec = spec_of("end")
            check_integer(owner, "end", self.end, self.start + 1, int(spec.high), spec.why)

    def check_model(self, model) -> None:
        """The checks that need the loaded model (a WindowPipeline), made before any frame is decoded."""
        length = model.config.unet.temporal_length
        if self.stride >= length:
            raise SettingError(
                type(self).__name__,
                "stride",
                self.stride,
                f"an integer in 1..{length - 1}: this model's windows are {length} frames long and must overlap",
            )

    def to_json(self) -> dict:
        """The settings as JSON values (size as a list), as the worker's job carries them."""
        data = asdict(self)
        data["size"] = None if self.size is None else list(self.size)
        return data

    @classmethod
    def from_json(cls, data: object) -> ReconstructionSettings:
        """Settings from to_json's form; SettingError for anything that is not a setting or not allowed."""
        owner = cls.__name__
        if not isinstance(data, dict):
            raise SettingError(owner, "settings", data, "a JSON object of reconstruction settings")
        known = {item.name for item in fields(cls)}
        for name in data:
            if name not in known:
                raise SettingError(
                    owner, str(name), data[name], f"one of the settings {', '.join(sorted(known))}"
                )
        size = data.get("size")
        return cls(**{**data, "size": tuple(size) if isinstance(size, list) else size})


def spec_of(name: str) -> SettingSpec:
    """The SettingSpec of the ReconstructionSettings field `name`."""
    return SETTING_SPECS[name]


def default_of(name: str) -> Any:
    """The default of the ReconstructionSettings field `name`."""
    return DEFAULTS[name]


SETTING_SPECS: dict[str, SettingSpec] = {
    item.name: item.metadata["spec"] for item in fields(ReconstructionSettings)
}
DEFAULTS: dict[str, Any] = {item.name: item.default for item in fields(ReconstructionSettings)}

"""What the parent and the worker process say to each other: JSON lines, the jobs, the events, the stages.

JSON only (no torch), so that the Blender side builds jobs and reads events with the engine's own words.
All messages are UTF-8 JSON, one object per line:
    parent -> worker, stdin:  first line the job, then optionally {"type": "cancel"}; closing stdin
                              (the parent went away) cancels too.
    worker -> parent, stdout: {"type": "started", "pid", "kind", "module_file"}, then {"type": "progress",
                              "stage", "done", "total", "elapsed", "message"} events, and one final event:
                              {"type": "done", ...}, {"type": "error", "message"} or {"type": "cancelled",
                              "message"}.
Jobs:
    ReconstructJob: {"kind": "reconstruct", "video", "output", "model", "settings": ReconstructionSettings'
        to_json()}; "done" carries "output" and the "summary" of the result (result_summary).
    CheckJob: {"kind": "check", "model", "device", "precision"}; "done" carries "report" (torch, CUDA, GPU
        memory, whether the model loads, its parameters and file size).
    ConvertJob: {"kind": "convert", "model", "vae", "output", "dtype", "preset"}: convert-checkpoint of the
        published files; "done" carries "output", "bytes" and "parameters" per part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..progress import ProgressEvent
from ..settings import ReconstructionSettings, default_of

# Event types, worker -> parent; the three final ones are also the parent's states of a finished job.
STARTED, PROGRESS, DONE, ERROR, CANCELLED = "started", "progress", "done", "error", "cancelled"
FINAL_EVENTS = (DONE, ERROR, CANCELLED)
# The one message parent -> worker after the job.
CANCEL = "cancel"
RECONSTRUCT, CHECK, CONVERT = "reconstruct", "check", "convert"
JOB_KINDS = (RECONSTRUCT, CHECK, CONVERT)
# The stages a reconstruct job reports, in order, with the words a status line shows for each.
STAGES = {
    "load": "Loading model",
    "decode": "Reading frames",
    "predict": "Predicting window",
    "align": "Aligning",
    "save": "Saving",
}
# Stages whose own messages say more than the stage's words ("window 2 of 5, DDIM step 3/5", "align: depth").
DETAILED_STAGES = ("predict", "align")


def encode(message: dict) -> str:
    """One message (a job, or an event {"type": ..., ...}) as its line, with the newline."""
    return json.dumps(message) + "\n"


def decode(line: str) -> dict | None:
    """The message of one line; None for a line that is not a JSON object (a library's stray print)."""
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def progress_fields(event: ProgressEvent) -> dict:
    """The fields of a "progress" event."""
    return {
        "stage": event.stage,
        "done": event.done,
        "total": event.total,
        "elapsed": round(event.elapsed, 3),
        "message": event.message,
    }


def progress_event(message: dict) -> ProgressEvent:
    """The ProgressEvent a "progress" message carries (progress_fields' inverse; missing fields are zero)."""
    return ProgressEvent(
        str(message.get("stage", "")),
        int(message.get("done", 0)),
        int(message.get("total", 0)),
        float(message.get("elapsed", 0.0)),
        str(message.get("message", "")),
    )


def result_summary(description) -> dict:
    """What the panel shows of a finished result (a core.result ResultDescription): frames, size, focal in
    pixels, timings, warnings; the "summary" of a reconstruct job's "done" event."""
    return {
        "frames": description.num_frames,
        "source_frames": [description.source_frames[0], description.source_frames[-1]],
        "width": description.width,
        "height": description.height,
        "focal_px": description.intrinsics.fx,
        "timings": description.timings,
        "warnings": list(description.warnings),
    }


@dataclass(frozen=True)
class ReconstructJob:
    """Reconstruct frames of `video` with `model` (a model setting) into the result folder `output`."""

    video: str
    output: str
    model: str
    settings: ReconstructionSettings

    def to_json(self) -> dict:
        return {
            "kind": RECONSTRUCT,
            "video": self.video,
            "output": self.output,
            "model": self.model,
            "settings": self.settings.to_json(),
        }

    @classmethod
    def from_json(cls, job: dict) -> ReconstructJob:
        """The job of to_json's form; KeyError for a missing entry, SettingError for a bad setting."""
        settings = ReconstructionSettings.from_json(job.get("settings", {}))
        return cls(str(job["video"]), str(job["output"]), str(job["model"]), settings)


@dataclass(frozen=True)
class CheckJob:
    """Report what the worker's Python offers (torch, CUDA, GPU memory) and whether `model` loads."""

    model: str = ""
    device: str = default_of("device")
    precision: str = default_of("precision")

    def to_json(self) -> dict:
        return {"kind": CHECK, "model": self.model, "device": self.device, "precision": self.precision}

    @classmethod
    def from_json(cls, job: dict) -> CheckJob:
        return cls(
            str(job.get("model") or ""),
            job.get("device", default_of("device")),
            job.get("precision", default_of("precision")),
        )


@dataclass(frozen=True)
class ConvertJob:
    """Convert the published model.ckpt and vae.ckpt into one .safetensors file at `output`."""

    model: str
    vae: str
    output: str
    dtype: str = "bf16"
    preset: str = "full"

    def to_json(self) -> dict:
        return {
            "kind": CONVERT,
            "model": self.model,
            "vae": self.vae,
            "output": self.output,
            "dtype": self.dtype,
            "preset": self.preset,
        }

    @classmethod
    def from_json(cls, job: dict) -> ConvertJob:
        return cls(
            str(job["model"]),
            str(job["vae"]),
            str(job["output"]),
            job.get("dtype", "bf16"),
            job.get("preset", "full"),
        )

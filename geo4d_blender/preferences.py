"""The add-on preferences: checkpoints, device, precision, the worker's Python (and its set-up), the result cache,
Check setup."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .core.errors import Geo4DError
from .core.model_choice import TINY_MODEL, model_files
from .core.model_choice import TINY_WEIGHTS as TINY_WEIGHTS  # the panel reads it from here
from .core.settings import default_of
from .core.worker.parent import WorkerStatus, describe_check, run_worker_job
from .core.worker.protocol import DONE, CheckJob
from .setting_properties import setting_property

logger = logging.getLogger(__name__)

ADDON_NAME = __package__
# Seconds Check setup waits for the worker (importing torch and loading a model).
CHECK_TIMEOUT = 300.0
# Tells this Blender session's unsaved files from another session's in the result cache.
_SESSION = f"{os.getpid()}-{uuid.uuid4().hex}"

TORCH_BUILD_ITEMS = (
    ("AUTO", "Auto", "The CUDA build the NVIDIA driver runs (Linux, Windows); the default build on macOS"),
    ("CPU", "CPU", "The CPU build, for machines without an NVIDIA GPU"),
)
# The long jobs started here (preference_tasks): the one running, if any; draw() shows its progress.
TASKS: list = []


@dataclass(frozen=True)
class SetupChoice:
    """What the preferences say, with defaults when the add-on is registered without them (development)."""

    checkpoint: str = ""
    vae_checkpoint: str = ""
    device: str = default_of("device")
    precision: str = default_of("precision")
    worker_python: str = ""
    cache_folder: str = ""

    def model(self) -> str:
        """The model the worker loads: the checkpoint (with its VAE as 'model.ckpt,vae.ckpt') or tiny."""
        if not self.checkpoint:
            return TINY_MODEL
        paths = [bpy.path.abspath(self.checkpoint)]
        if self.vae_checkpoint:
            paths.append(bpy.path.abspath(self.vae_checkpoint))
        return ",".join(paths)


class Geo4DPreferences(bpy.types.AddonPreferences):
    """Model files and where the heavy work runs."""

    bl_idname = ADDON_NAME

    checkpoint: StringProperty(
        name="Checkpoint",
        description="The Geo4D weights: the published model.ckpt or a converted .safetensors "
        "(empty: the small embedded 'tiny' model)",
        subtype="FILE_PATH",
    )
    vae_checkpoint: StringProperty(
        name="Point-Map VAE",
        description="The published vae.ckpt (empty: the vae.ckpt next to model.ckpt; not needed for .safetensors)",
        subtype="FILE_PATH",
    )
    device: setting_property("device")
    precision: setting_property("precision")
    worker_python: StringProperty(
        name="Worker Python",
        description="The python that runs the reconstruction (empty: Blender's own). Point it at an "
        "environment with a CUDA build of torch to use an NVIDIA GPU",
        subtype="FILE_PATH",
    )
    cache_folder: StringProperty(
        name="Result Cache",
        description="Where reconstructions are kept so that re-opening and re-importing are instant "
        "(empty: the add-on's own folder in Blender's user folder)",
        subtype="DIR_PATH",
    )
    torch_build: EnumProperty(
        name="Torch Build", description="Which torch Set Up GPU Environment installs", items=TORCH_BUILD_ITEMS
    )
    wheel_folder: StringProperty(
        name="Wheel Folder",
        description="Install offline from the wheels in this folder, downloaded on another machine "
        "(empty: download them, which needs Allow Online Access)",
        subtype="DIR_PATH",
    )
    setup_report: StringProperty(
        name="Setup Report", description="What Check Setup found", options={"SKIP_SAVE"}
    )
    task_message: StringProperty(
        name="Last Task", description="How the last set-up or conversion ended", options={"SKIP_SAVE"}
    )
    task_failed: BoolProperty(name="Last Task Failed", options={"SKIP_SAVE"})

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        column = layout.column(heading="Model")
        row = column.row()
        row.prop(self, "checkpoint")
        row.operator("geo4d.convert_checkpoint", text="Convert")
        column.prop(self, "vae_checkpoint")
        column = layout.column(heading="Compute")
        column.prop(self, "device")
        column.prop(self, "precision")
        column.prop(self, "worker_python")
        layout.prop(self, "cache_folder")
        self.draw_environment(layout.box())
        row = layout.row()
        row.operator(GEO4D_OT_check_setup.bl_idname, icon="CHECKMARK")
        if self.setup_report:
            box = layout.box()
            for line in self.setup_report.split("\n"):
                box.label(text=line)

    def draw_environment(self, layout: bpy.types.UILayout) -> None:
        """Set Up GPU Environment: its options, or the running task's progress and Cancel; the last outcome."""
        layout.label(text="GPU Environment", icon="CONSOLE")
        layout.prop(self, "torch_build")
        layout.prop(self, "wheel_folder")
        if TASKS:
            row = layout.row()
            row.progress(factor=TASKS[0].fraction, type="BAR", text=TASKS[0].stage)
            row.operator("geo4d.cancel_preferences_task", text="Cancel", icon="CANCEL")
        else:
            layout.operator("geo4d.setup_environment", icon="IMPORT")
        if self.task_message:
            layout.label(text=self.task_message, icon="ERROR" if self.task_failed else "INFO")


def addon_preferences(context: bpy.types.Context | None = None) -> Geo4DPreferences | None:
    """Our preferences when the add-on is enabled through Blender; None when registered directly."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_NAME)
    return addon.preferences if addon is not None else None


def setup_choice(context: bpy.types.Context | None = None) -> SetupChoice:
    prefs = addon_preferences(context)
    if prefs is None:
        return SetupChoice()
    return SetupChoice(
        checkpoint=prefs.checkpoint,
        vae_checkpoint=prefs.vae_checkpoint,
        device=prefs.device,
        precision=prefs.precision,
        worker_python=bpy.path.abspath(prefs.worker_python) if prefs.worker_python else "",
        cache_folder=bpy.path.abspath(prefs.cache_folder) if prefs.cache_folder else "",
    )


def user_folder(name: str) -> Path:
    """Our folder `name` in the extension's user folder (kept across updates of the extension), or in
    Blender's user data when the add-on is registered directly (development)."""
    if ADDON_NAME.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(ADDON_NAME, path=name, create=True))
    return Path(bpy.utils.user_resource("DATAFILES", path=f"geo4d/{name}", create=True))


def cache_root(choice: SetupChoice) -> Path:
    """The folder results go to: the preference, else our user folder."""
    return Path(choice.cache_folder) if choice.cache_folder else user_folder("results")


def strip_result_folder(choice: SetupChoice, scene_name: str, strip_name: str) -> Path:
    """The cache folder of one strip of one .blend: re-running the strip replaces exactly this result.

    <file>-<hash of the .blend path>/<scene>-<strip>-<hash of the exact scene and strip names>: the cleaned
    names keep it readable, the hashes keep names that clean alike apart (Szene_ä and Szene_ö, shot.1 and
    shot_1). Renaming a strip or its scene, or copying it (a copy gets a new name), starts a new folder; the
    old result stays for the imports that read it. Unsaved files are told apart per Blender session.
    """
    blend = bpy.data.filepath
    stem = Path(blend).stem if blend else "unsaved"
    file_digest = hashlib.sha1((blend or f"unsaved {_SESSION}").encode()).hexdigest()[:8]
    strip_digest = hashlib.sha1(f"{scene_name}\0{strip_name}".encode()).hexdigest()[:10]
    return (
        cache_root(choice)
        / f"{bpy.path.clean_name(stem)}-{file_digest}"
        / f"{bpy.path.clean_name(f'{scene_name}-{strip_name}')}-{strip_digest}"
    )


def check_model_files(model: str) -> list[Path]:
    """The model's files (a published model.ckpt with its vae.ckpt), refused before a worker is started when
    one does not exist."""
    weights, vae = model_files(model)
    return [weights] if vae is None else [weights, vae]


def check_job(choice: SetupChoice) -> dict:
    """The worker job of Check Setup for the model, device and precision the preferences name."""
    return CheckJob(choice.model(), choice.device, choice.precision).to_json()


def check_lines(status: WorkerStatus) -> list[str]:
    """What a finished Check Setup job found, one fact a line; Geo4DError when the worker failed."""
    if status.state != DONE:
        raise Geo4DError(status.error or status.message)
    return describe_check(status.result["report"])


class GEO4D_OT_check_setup(bpy.types.Operator):
    """Run the worker Python once and report torch, CUDA, GPU memory and whether the model loads"""

    bl_idname = "geo4d.check_setup"
    bl_label = "Check Setup"

    def execute(self, context: bpy.types.Context) -> set[str]:
        choice = setup_choice(context)
        try:
            check_model_files(choice.model())
            status = run_worker_job(check_job(choice), choice.worker_python or None, timeout=CHECK_TIMEOUT)
            lines = check_lines(status)
        except Geo4DError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        prefs = addon_preferences(context)
        if prefs is not None:
            prefs.setup_report = "\n".join(lines)
        for line in lines:
            self.report({"INFO"}, line)
        return {"FINISHED"}

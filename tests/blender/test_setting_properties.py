"""The Blender side's reconstruction settings come from core/settings.py: the panel's and the operator's
properties, the preferences, StripSettings and the worker job of a strip say the same defaults and limits."""

from __future__ import annotations

from pathlib import Path

import bpy
import pytest
from movie_strips import add_movie_strip, write_clip

import geo4d
from geo4d.core.errors import Geo4DError
from geo4d.core.limits import MAX_MODEL_SIDE
from geo4d.core.settings import CHOICE, SIZE, ReconstructionSettings, default_of, spec_of
from geo4d.core.worker.protocol import ReconstructJob
from geo4d.preferences import Geo4DPreferences, SetupChoice
from geo4d.properties import PREFERENCE_ITEMS
from geo4d.setting_properties import MAX_BLENDER_INT
from geo4d.strip_job import StripJob, StripSettings

# ReconstructionSettings field -> the name of the property (and StripSettings field) that sets it in Blender.
BLENDER_NAMES = {
    "stride": "stride",
    "steps": "steps",
    "seed": "seed",
    "device": "device",
    "precision": "precision",
    "max_points_per_frame": "points_per_frame",
    "size": "input_size",
}


def rna_properties(scene: bpy.types.Scene, owner: str):
    if owner == "scene":
        return scene.geo4d.bl_rna.properties
    return bpy.ops.geo4d.reconstruct_strip.get_rna_type().properties


# (the panel's scene settings or the operator, the setting): the input size is the operator's only.
PROPERTIES = [
    (owner, name)
    for owner in ("scene", "operator")
    for name in BLENDER_NAMES
    if (owner, name) != ("scene", "size")
]


@pytest.mark.parametrize(("owner", "name"), PROPERTIES)
def test_each_property_has_the_settings_default_limits_and_help(scene, owner, name):
    spec, default = spec_of(name), default_of(name)
    prop = rna_properties(scene, owner)[BLENDER_NAMES[name]]
    assert prop.name == spec.label
    assert prop.description.lower().startswith(spec.help.lower())
    if spec.kind == CHOICE:
        items = [(item.identifier, item.name, item.description) for item in prop.enum_items]
        expected = [(choice.name, choice.label, choice.description) for choice in spec.choices]
        assert items == list(PREFERENCE_ITEMS) + expected
        assert (
            prop.default == PREFERENCE_ITEMS[0][0]
        )  # the preferences' choice, itself defaulting to the settings'
        return
    if spec.kind == SIZE:
        assert tuple(prop.default_array) == (0, 0) and default is None
        assert (prop.hard_min, prop.hard_max) == (0, MAX_MODEL_SIDE)
        return
    assert prop.default == (0 if default is None else default)  # 0 stands for None in Blender
    assert prop.hard_min == (0 if spec.none_means else spec.low)
    assert prop.hard_max == min(spec.high, MAX_BLENDER_INT)


def test_the_preferences_offer_the_settings_devices_and_precisions(scene):
    for name in ("device", "precision"):
        prop = Geo4DPreferences.bl_rna.properties[name]
        assert prop.default == default_of(name) == getattr(SetupChoice(), name)
        assert [item.identifier for item in prop.enum_items] == list(spec_of(name).names)
        assert prop.description.lower() == spec_of(name).help


def test_strip_settings_default_to_the_settings_and_refuse_past_their_limits(scene):
    for name in ("stride", "steps", "seed", "size"):
        assert getattr(StripSettings(), name) == default_of(name), name
    assert StripSettings().points_per_frame == 0 and default_of("max_points_per_frame") is None
    for name in ("stride", "steps"):
        spec = spec_of(name)
        assert getattr(StripSettings(**{name: int(spec.high)}), name) == spec.high
        with pytest.raises(Geo4DError, match=f"^geo4d.reconstruct_strip: {name} = {int(spec.high) + 1} "):
            geo4d.reconstruct_strip(scene, "shot", **{name: int(spec.high) + 1})


def test_the_strip_job_carries_the_settings_to_the_worker(scene, tmp_path):
    strip = add_movie_strip(scene, write_clip(tmp_path / "clip"))
    settings = StripSettings(
        model="tiny",
        stride=spec_of("stride").high,
        steps=3,
        seed=77,
        device="cpu",
        points_per_frame=500,
        size=(128, 64),
        result_folder=str(tmp_path / "result"),
    )
    job = StripJob(scene, strip, settings)
    sent = ReconstructJob.from_json(job.job)
    assert sent.model == "tiny" and Path(sent.output) == tmp_path / "result"
    assert sent.settings == ReconstructionSettings(
        start=job.frames.movie_start,
        end=job.frames.movie_end,
        stride=int(spec_of("stride").high),
        steps=3,
        seed=77,
        device="cpu",
        precision=SetupChoice().precision,
        size=(128, 64),
        max_points_per_frame=500,
    )
    all_points = StripJob(scene, strip, StripSettings(model="tiny", result_folder=str(tmp_path / "r2")))
    assert ReconstructJob.from_json(all_points.job).settings.max_points_per_frame is None

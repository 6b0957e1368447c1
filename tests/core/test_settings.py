"""The reconstruction settings are the one home of their defaults, limits and help: every surface derived from
them says the same (the command line's options, the worker's job JSON, the window plan, the memory message)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import torch

from geo4d.core.cli import build_parser
from geo4d.core.commands import eval as eval_command
from geo4d.core.commands import reconstruct
from geo4d.core.errors import Geo4DError, SettingError
from geo4d.core.limits import MAX_COUNT
from geo4d.core.out_of_memory import out_of_memory_message
from geo4d.core.reconstruction import ReconstructionSettings as PipelineSettings
from geo4d.core.settings import (
    CHOICE,
    INTEGER,
    MAX_STRIDE,
    WINDOW_LENGTH,
    ReconstructionSettings,
    default_of,
    spec_of,
)
from geo4d.core.windows import plan_windows
from geo4d.core.worker.protocol import CheckJob, ReconstructJob

FIELDS = [item.name for item in fields(ReconstructionSettings)]
INTEGER_FIELDS = [name for name in FIELDS if spec_of(name).kind == INTEGER]


def parser_actions(command) -> dict:
    """The command's argparse actions by destination (the settings field they set)."""
    parser = build_parser([command])
    (subparsers,) = [action for action in parser._actions if action.dest == "command"]
    return {action.dest: action for action in subparsers.choices[command.NAME]._actions}


def parsed(argv: list[str]):
    return build_parser([reconstruct]).parse_args(["reconstruct", "clip.mp4", "-o", "out", *argv])


def test_the_pipeline_runs_the_settings_of_the_one_home():
    assert PipelineSettings is ReconstructionSettings


@pytest.mark.parametrize("command", [reconstruct, eval_command], ids=lambda command: command.NAME)
def test_every_option_has_the_settings_default_choices_and_help(command):
    actions = parser_actions(command)
    options = reconstruct.OPTIONS if command is reconstruct else reconstruct.SAMPLING_OPTIONS
    assert set(options) <= set(FIELDS)
    for name, option in options.items():
        action, spec = actions[name], spec_of(name)
        assert action.option_strings == [option]
        assert action.default == default_of(name) == getattr(ReconstructionSettings(), name), name
        if spec.kind == CHOICE:
            assert tuple(action.choices) == spec.names == tuple(choice.name for choice in spec.choices)
        elif name != "size" or command is reconstruct:  # eval says its own size default
            assert spec.help in action.help, name
        if spec.kind == INTEGER and spec.high < MAX_COUNT:
            assert f"{spec.low:g}-{spec.high:g}" in action.help, name


def test_the_reconstruct_command_sets_every_setting():
    assert set(reconstruct.OPTIONS) == set(FIELDS)
    assert reconstruct.settings_from(parsed([]), reconstruct.OPTIONS) == ReconstructionSettings()


@pytest.mark.parametrize("name", INTEGER_FIELDS)
def test_each_integer_limit_is_the_same_for_the_settings_and_the_command_line(name):
    spec, option = spec_of(name), reconstruct.OPTIONS[name]
    low, high = int(spec.low), int(spec.high)
    for edge in (low, high):
        assert getattr(ReconstructionSettings(**{name: edge}), name) == edge
        settings = reconstruct.settings_from(parsed([option, str(edge)]), reconstruct.OPTIONS)
        assert getattr(settings, name) == edge
    for outside in (low - 1, high + 1):
        with pytest.raises(SettingError, match=f"{name} = {outside} is invalid"):
            ReconstructionSettings(**{name: outside})
        with pytest.raises(Geo4DError, match=f"^{option} = {outside} is invalid"):
            reconstruct.settings_from(parsed([option, str(outside)]), reconstruct.OPTIONS)


def test_one_stride_range_everywhere_and_the_windows_share_a_frame():
    assert MAX_STRIDE == WINDOW_LENGTH - 1 == spec_of("stride").high
    assert plan_windows(48).stride == default_of("stride")
    assert f"now {default_of('decode_batch')} frames" in out_of_memory_message("predict", torch.device("cpu"))


def test_settings_travel_as_json_and_come_back_equal():
    settings = ReconstructionSettings(
        start=3, end=40, stride=7, steps=2, seed=9, device="cpu", precision="fp32", size=(512, 320),
        max_points_per_frame=1000, min_confidence=0.25, window_batch=2, decode_batch=4,
    )  # fmt: skip
    data = json.loads(json.dumps(settings.to_json()))
    assert set(data) == set(FIELDS) and data["size"] == [512, 320]
    assert ReconstructionSettings.from_json(data) == settings
    job = ReconstructJob("clip.mp4", "out", "tiny", settings)
    assert ReconstructJob.from_json(json.loads(json.dumps(job.to_json()))) == job
    check = CheckJob("tiny", "cpu", "fp32")
    assert CheckJob.from_json(check.to_json()) == check
    assert CheckJob() == CheckJob(device=default_of("device"), precision=default_of("precision"))


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"stride": 16}, "ReconstructionSettings.stride = 16"),
        ({"strides": 4}, "ReconstructionSettings.strides = 4"),
        ({"size": [100, 64]}, r"ReconstructionSettings.size = \(100, 64\)"),
        ([4], r"ReconstructionSettings.settings = \[4\]"),
    ],
)
def test_settings_from_json_refuse_what_is_not_a_setting(data, names):
    with pytest.raises(SettingError, match=f"^{names} is invalid"):
        ReconstructionSettings.from_json(data)

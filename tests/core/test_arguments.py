"""Bad arguments at every engine entry point (the reconstruct, eval and synth commands and the Python functions):
each refused with one line naming the argument as the user typed it, before any decoding or network work."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from geo4d.core.cli import main
from geo4d.core.commands import eval as eval_command
from geo4d.core.commands import reconstruct, synth
from geo4d.core.errors import Geo4DError, SettingError
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network
from geo4d.core.network.network_file import write_network_file
from geo4d.core.reconstruction import ReconstructionSettings, reconstruct_frames, reconstruct_to_folder
from geo4d.core.reconstruction import reconstruct as reconstruct_video
from geo4d.core.video_writer import write_video

COMMANDS = (synth, reconstruct, eval_command)

# (options, the option the one-line message must name, exit status): argparse's own refusals exit with 2,
# the settings' with 1.
RECONSTRUCT_CASES = [
    (["--end", "0"], "--end = 0", 1),
    (["--start", "5", "--end", "5"], "--end = 5", 1),
    (["--start", "-1"], "--start = -1", 1),
    (["--end", "abc"], "argument --end: invalid int value", 2),
    (["--stride", "16"], "--stride = 16", 1),
    (["--stride", "0"], "--stride = 0", 1),
    (["--stride", "4.5"], "argument --stride: invalid int value", 2),
    (["--steps", "1001"], "--steps = 1001", 1),
    (["--steps", "-1"], "--steps = -1", 1),
    (["--seed", "-1"], "--seed = -1", 1),
    (["--size", "100x64"], "--size = (100, 64)", 1),
    (["--size", "4096x64"], "--size = (4096, 64)", 1),
    (["--size", "64"], "argument --size: size '64' is not of the form", 2),
    (["--min-confidence", "nan"], "--min-confidence = nan", 1),
    (["--min-confidence", "inf"], "--min-confidence = inf", 1),
    (["--min-confidence", "-0.5"], "--min-confidence = -0.5", 1),
    (["--max-points", "0"], "--max-points = 0", 1),
    (["--window-batch", "65"], "--window-batch = 65", 1),
    (["--decode-batch", "0"], "--decode-batch = 0", 1),
    (["--device", "gpu"], "argument --device: invalid choice", 2),
    (["--precision", "fp8"], "argument --precision: invalid choice", 2),
]
SYNTH_CASES = [
    (["--size", "8192x8192"], "--size (width) = 8192", 1),
    (["--size", "64x4"], "--size (height) = 4", 1),
    (["--frames", "0"], "--frames = 0", 1),
    (["--frames", "100000"], "--frames = 100000", 1),
    (["--frames", "ten"], "argument --frames: invalid int value", 2),
    (["--fps", "nan"], "--fps = nan", 1),
    (["--fps", "inf"], "--fps = inf", 1),
    (["--fps", "0"], "--fps = 0.0", 1),
    (["--seed", "-3"], "--seed = -3", 1),
    (["--movers", "13"], "--movers = 13", 1),
    (["--movers", "-1"], "--movers = -1", 1),
]
EVAL_CASES = [
    (["--stride", "16"], "--stride = 16", 1),
    (["--steps", "1001"], "--steps = 1001", 1),
    (["--size", "100x64"], "--size = (100, 64)", 1),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    frames = np.random.default_rng(0).integers(0, 255, (20, 64, 96, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=24)


def refused(capsys, argv: list[str], names: str, status: int) -> str:
    """Run the command line in-process: exit `status` with one stderr line naming `names`; returns it."""
    try:
        code = main(COMMANDS, argv)
    except SystemExit as exit_:  # argparse's refusal
        code = exit_.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == status and len(lines) == 1, captured.err
    assert names in lines[0] and "Settings" not in lines[0] and "SceneConfig" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(("options", "names", "status"), RECONSTRUCT_CASES, ids=lambda v: str(v))
def test_reconstruct_command_names_the_bad_option(capsys, tmp_path, video, options, names, status):
    output = tmp_path / "result"
    refused(capsys, ["reconstruct", str(video), "-o", str(output), *options], names, status)
    assert not output.exists()


@pytest.mark.parametrize(("options", "names", "status"), SYNTH_CASES, ids=lambda v: str(v))
def test_synth_command_names_the_bad_option_before_rendering(capsys, tmp_path, options, names, status):
    output = tmp_path / "scene"
    started = time.perf_counter()
    refused(capsys, ["synth", "-o", str(output), *options], names, status)
    assert time.perf_counter() - started < 1.0 and not output.exists()


@pytest.mark.parametrize(("options", "names", "status"), EVAL_CASES, ids=lambda v: str(v))
def test_eval_command_names_the_bad_option(capsys, tmp_path, options, names, status):
    output = tmp_path / "report"
    argv = ["eval", "--dataset", "sintel", "--root", str(tmp_path), "-o", str(output), *options]
    refused(capsys, argv, names, status)
    assert not output.exists()


def test_the_real_command_line_prints_one_line_and_no_traceback(tmp_path, video):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "geo4d",
            "reconstruct",
            str(video),
            "-o",
            str(tmp_path / "r"),
            "--stride",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "geo4d: error: --stride = 16 is invalid: it must be an integer in 1..15 (consecutive 16-frame "
        "windows must share a frame to be aligned). Change the option."
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stride", 16),
        ("stride", "4"),
        ("stride", True),
        ("end", 0),
        ("steps", math.nan),
        ("seed", 2**63),
        ("size", (64,)),
        ("size", (64, 64.0)),
        ("size", "512x320"),
        ("min_confidence", math.nan),
        ("min_confidence", "0.5"),
        ("device", None),
        ("precision", "fp8"),
        ("max_points_per_frame", 0),
        ("window_batch", -1),
        ("decode_batch", 1.5),
    ],
    ids=lambda v: repr(v),
)
def test_settings_name_the_field_the_python_caller_typed(field, value):
    with pytest.raises(SettingError, match=rf"^ReconstructionSettings\.{field} = ") as raised:
        ReconstructionSettings(**{field: value})
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, Geo4DError)
    assert raised.value.field == field and "\n" not in str(raised.value)


def test_python_functions_refuse_bad_arguments_before_loading_or_decoding(tmp_path, video):
    events = []
    started = time.perf_counter()
    with pytest.raises(Geo4DError, match="^settings = .* is not a ReconstructionSettings"):
        reconstruct_video(video, "tiny", {"stride": 4}, progress=events.append)
    with pytest.raises(Geo4DError, match="^video = 5 is not a file path"):
        reconstruct_video(5, "tiny", progress=events.append)
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    for fps in ("30", math.nan, math.inf, 0, True):
        with pytest.raises(Geo4DError, match="frame rate .* is not usable"):
            reconstruct_frames(frames, fps, "tiny", progress=events.append)
    output = tmp_path / "result"
    with pytest.raises(Geo4DError, match="^settings = "):
        reconstruct_to_folder(video, output, "tiny", {"stride": 4}, progress=events.append)
    assert not output.exists() and not events
    assert time.perf_counter() - started < 2.0  # no model was loaded


@pytest.fixture(scope="module")
def short_window_network(tmp_path_factory) -> Path:
    """A random-weight tiny network whose windows are 8 frames long (stride 8 leaves them disjoint)."""
    tiny = NetworkConfig.tiny()
    config = dataclasses.replace(
        tiny,
        unet=dataclasses.replace(tiny.unet, temporal_length=8),
        resampler=dataclasses.replace(tiny.resampler, video_length=8),
    )
    model = random_network(config, 0)
    modules = {"unet": model.unet, "vae": model.vae, "pointmap_vae": model.pointmap_vae}
    path = tmp_path_factory.mktemp("model") / "short-windows.safetensors"
    write_network_file(path, modules, model.context, config, torch.float32)
    return path


def test_a_stride_the_models_windows_cannot_share_is_refused_before_decoding(
    capsys, tmp_path, video, short_window_network
):
    events = []
    settings = ReconstructionSettings(stride=8, size=(128, 64))
    with pytest.raises(SettingError, match="stride = 8 is invalid: it must be an integer in 1..7") as raised:
        reconstruct_video(video, short_window_network, settings, progress=events.append)
    assert raised.value.field == "stride"
    assert not [event for event in events if event.stage == "decode"]
    output = tmp_path / "result"
    line = refused(
        capsys,
        [
            "reconstruct",
            str(video),
            "-o",
            str(output),
            "--checkpoint",
            str(short_window_network),
            "--stride",
            "8",
        ],
        "--stride = 8 is invalid",
        1,
    )
    assert "windows are 8 frames long" in line and not output.exists()

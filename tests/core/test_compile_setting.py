"""The opt-in --compile setting: off by default, validated, and torch.compile's windows match the plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geo4d.__main__ import COMMANDS
from geo4d.core.cli import build_parser
from geo4d.core.commands.reconstruct import OPTIONS, settings_from
from geo4d.core.errors import SettingError
from geo4d.core.network.compiled import CompiledVAE
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network
from geo4d.core.network.window_predictor import WindowPredictor
from geo4d.core.progress import Reporter
from geo4d.core.settings import ReconstructionSettings
from geo4d.core.windows import plan_windows


def test_compile_is_off_by_default_and_set_by_its_option():
    assert ReconstructionSettings().compile is False
    with pytest.raises(SettingError, match="compile = 'yes' is invalid: it must be True or False"):
        ReconstructionSettings(compile="yes")
    parser = build_parser(COMMANDS)
    plain = parser.parse_args(["reconstruct", "clip.mp4", "-o", "out"])
    chosen = parser.parse_args(["reconstruct", "clip.mp4", "-o", "out", "--compile"])
    assert plain.compile is False and chosen.compile is True
    assert settings_from(chosen, OPTIONS).compile is True and settings_from(plain, OPTIONS).compile is False
    assert ReconstructionSettings.from_json(ReconstructionSettings(compile=True).to_json()).compile is True


@pytest.mark.slow  # compiling the tiny UNet and VAEs on a CPU takes minutes
def test_compiled_windows_match_the_plain_ones():
    model = random_network(NetworkConfig.tiny(), seed=1)
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    plan = plan_windows(16)
    compiled = WindowPredictor(model, ReconstructionSettings(steps=1, compile=True))
    assert isinstance(compiled.model.vae, CompiledVAE)
    plain = WindowPredictor(model, ReconstructionSettings(steps=1)).predict(frames, 24.0, plan, Reporter())
    ours = compiled.predict(frames, 24.0, plan, Reporter())[0][0]
    for name in ("point_map", "point_confidence", "disparity", "ray_direction", "ray_moment"):
        torch.testing.assert_close(getattr(ours, name), getattr(plain[0][0], name), rtol=1e-3, atol=1e-3)

"""`python -m geo4d train` end to end at toy size: a loadable network file, loss logs of every stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geo4d.__main__ import COMMANDS
from geo4d.core.cli import main
from geo4d.core.errors import Geo4DError
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import load_weights, resolve_device
from geo4d.core.network.network_file import read_network_metadata
from geo4d.core.train.config import TrainConfig
from geo4d.core.train.recipe import LOG_NAME, SUMMARY_NAME, WEIGHTS_NAME


@pytest.mark.slow  # the whole toy recipe: about 100 s on two cores
def test_train_command_writes_a_working_tiny_model(tmp_path, capsys) -> None:
    output = tmp_path / "run"
    assert main(COMMANDS, ["train", "-o", str(output), "--preset", "toy", "--threads", "1"]) == 0
    assert str(output / WEIGHTS_NAME) in capsys.readouterr().out

    stages = {json.loads(line)["stage"] for line in (output / LOG_NAME).read_text().splitlines()}
    assert stages == {"vae", "unet", "pointmap"}
    summary = json.loads((output / SUMMARY_NAME).read_text())
    assert summary["seeds"] == TrainConfig.toy().seeds and summary["input_size"] == [128, 64]
    assert summary["final_losses"]["pointmap"]["sampled"] == 1.0  # the UNet's own samples were decoded

    assert read_network_metadata(output / WEIGHTS_NAME)["dtype"] == "float16"
    model = load_weights(output / WEIGHTS_NAME, None, torch.device("cpu"), torch.float32)
    assert model.config == NetworkConfig.tiny()
    frames = np.random.default_rng(0).integers(0, 256, (16, 64, 128, 3), dtype=np.uint8)
    prediction = model.predict_window(frames, 24.0, None, 0, steps=0, decode_batch=8)
    assert prediction.point_map.shape == (16, 64, 128, 3)
    assert torch.isfinite(prediction.point_confidence).all() and (prediction.point_confidence > 0).all()


def test_bad_training_options_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unet_steps = -1"):
        TrainConfig(unet_steps=-1)
    with pytest.raises(ValueError, match="scenes = 5000"):
        TrainConfig(scenes=5000)
    with pytest.raises(ValueError, match="unet_ema = 1.0"):
        TrainConfig(unet_ema=1.0)
    with pytest.raises(ValueError, match="unet_temporal_weight = -1.0"):
        TrainConfig(unet_temporal_weight=-1.0)
    with pytest.raises(ValueError, match="'huge'"):
        TrainConfig.preset("huge")
    assert main(COMMANDS, ["train", "-o", str(tmp_path), "--preset", "toy", "--scenes", "0"]) == 1
    if not torch.cuda.is_available():
        with pytest.raises(Geo4DError, match="CUDA was requested"):
            resolve_device("cuda")

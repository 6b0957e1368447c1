"""The embedded model ships as a network file of the tiny config, under 50 MB, with its model card."""

from __future__ import annotations

from pathlib import Path

import torch

from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.network_file import load_network_file, read_network_metadata
from geo4d.core.train.config import TRAIN_SEED_START, TrainConfig

WEIGHTS = Path(__file__).parents[3] / "core" / "weights"


def test_shipped_tiny_weights_load_as_the_tiny_network() -> None:
    path = WEIGHTS / "geo4d-tiny.safetensors"
    assert path.stat().st_size < 50e6
    assert read_network_metadata(path)["dtype"] == "float16"
    config, modules, context = load_network_file(path, "cpu", torch.float32)
    assert config == NetworkConfig.tiny()
    assert set(modules) == {"unet", "vae", "pointmap_vae"}
    assert context.shape == (1, 77 + 16 * 16, 32) and torch.isfinite(context).all()
    assert modules["pointmap_vae"].decoder_adaptor is not None


def test_model_card_names_the_data_seeds_and_the_published_checkpoint() -> None:
    card = (WEIGHTS / "MODEL_CARD.md").read_text()
    seeds = TrainConfig.shipped().seeds
    assert seeds[0] == TRAIN_SEED_START and f"seeds {seeds[0]}-{seeds[-1]}" in card
    assert "published Geo4D" in card and "python -m geo4d train" in card
    assert len((WEIGHTS / "geo4d-tiny.train_log.jsonl").read_text().splitlines()) > 10

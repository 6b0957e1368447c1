"""`convert-checkpoint`: published-format files in, one safetensors network file out, round trip exact."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from geo4d.core.cli import main
from geo4d.core.commands import convert_checkpoint
from geo4d.core.network.checkpoint import INFERENCE_PARTS, build_part
from geo4d.core.network.clip import constant_context
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.network_file import load_network_file

pytestmark = pytest.mark.usefixtures("single_thread")
TINY = NetworkConfig.tiny()


@pytest.fixture(scope="module")
def tiny_parts() -> dict[str, torch.nn.Module]:
    torch.manual_seed(2)
    parts = (*INFERENCE_PARTS, "text", "visual", "resampler")
    return {part: build_part(part, TINY).eval().requires_grad_(False) for part in parts}


@pytest.fixture(scope="module")
def published(tmp_path_factory, tiny_parts, write_published_checkpoints):
    return write_published_checkpoints(tmp_path_factory.mktemp("published"), tiny_parts, TINY)


def convert(*argv: str) -> int:
    return main([convert_checkpoint], ["convert-checkpoint", *map(str, argv)])


def test_round_trip_is_exact_in_fp32(tmp_path, published, tiny_parts):
    output = tmp_path / "geo4d.safetensors"
    assert convert(*published, "-o", output, "--dtype", "fp32", "--preset", "tiny") == 0
    with safe_open(str(output), framework="pt") as file:
        prefixes = {key.partition(".")[0] for key in file.keys()}
    assert prefixes == {*INFERENCE_PARTS, "context"}  # no CLIP towers, no resampler
    config, modules, context = load_network_file(output)
    assert config == TINY
    expected_context = constant_context(tiny_parts["text"], tiny_parts["visual"], tiny_parts["resampler"])
    assert torch.equal(context, expected_context)
    for part in INFERENCE_PARTS:
        expected, state = tiny_parts[part].state_dict(), modules[part].state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[name], expected[name]) for name in expected), part


def test_bf16_output(tmp_path, published, tiny_parts):
    output = tmp_path / "geo4d-bf16.safetensors"
    assert convert(*published, "-o", output, "--preset", "tiny") == 0
    with safe_open(str(output), framework="pt") as file:
        assert file.metadata()["dtype"] == "bfloat16"
        weight = file.get_tensor("unet.out.2.weight")
    assert weight.dtype == torch.bfloat16
    torch.testing.assert_close(weight.float(), tiny_parts["unet"].out[2].weight, rtol=1e-2, atol=1e-3)


def test_errors_leave_no_output(tmp_path, published, capsys):
    output = tmp_path / "geo4d.safetensors"
    assert convert(published[0], tmp_path / "missing.ckpt", "-o", output, "--preset", "tiny") == 1
    assert "Checkpoint not found" in capsys.readouterr().err
    assert convert(published[1], published[0], "-o", output, "--preset", "tiny") == 1
    assert "is the point-map VAE (vae.ckpt), not the Geo4D model" in capsys.readouterr().err
    assert convert(*published, "-o", tmp_path / "geo4d.pt", "--preset", "tiny") == 1
    assert "must end in .safetensors" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

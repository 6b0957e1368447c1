"""The 3-D UNet: golden vectors of the authors' implementation, the published key set, tiny-config behaviour."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from geo4d.core.network.config import NetworkConfig, UNetConfig
from geo4d.core.network.unet import CHECKPOINT_RENAMES, UNet3D

GOLDEN_CONFIG = UNetConfig(
    model_channels=32, channel_mult=(1, 2, 1, 1), head_channels=16, context_dim=8, temporal_length=4
)


def rename(key: str) -> str:
    return ".".join(CHECKPOINT_RENAMES.get(part, part) for part in key.split("."))


@pytest.fixture(scope="module")
def golden_unet(golden) -> tuple[UNet3D, dict[str, torch.Tensor]]:
    tensors = golden("unet")
    unet = UNet3D(GOLDEN_CONFIG).eval()
    weights = {
        rename(key.removeprefix("weights.")): value
        for key, value in tensors.items()
        if key.startswith("weights.")
    }
    unet.load_state_dict(weights, strict=True)
    return unet, tensors


@pytest.mark.parametrize("case", ["b1", "b2"])
def test_unet_reproduces_the_authors_output(golden_unet, case: str) -> None:
    unet, tensors = golden_unet
    with torch.no_grad():
        y = unet(
            tensors[f"input.x_{case}"],
            tensors[f"input.timesteps_{case}"],
            tensors[f"input.context_{case}"],
            tensors[f"input.fs_{case}"],
        )
    expected = tensors[f"output.y_{case}"]
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, atol=5e-5, rtol=0)


def test_unet_uses_fps(golden_unet) -> None:
    unet, tensors = golden_unet
    x, t, context = tensors["input.x_b1"], tensors["input.timesteps_b1"], tensors["input.context_b1"]
    with torch.no_grad():
        default = unet(x, t, context)
        at_24 = unet(x, t, context, torch.tensor([24]))
        at_12 = unet(x, t, context, torch.tensor([12]))
    torch.testing.assert_close(default, at_24, atol=0, rtol=0)
    assert (at_12 - at_24).abs().max() > 1e-3


def test_full_unet_has_the_published_keys_and_shapes(published_part, shapes_of) -> None:
    with torch.device("meta"):
        unet = UNet3D(NetworkConfig.full().unet)
    expected = published_part("model.diffusion_model.", CHECKPOINT_RENAMES)
    assert len(expected) == 1516
    assert shapes_of(unet) == expected


def tiny_inputs(
    frames: int = 4, height: int = 16, width: int = 16, batch: int = 1
) -> tuple[torch.Tensor, ...]:
    config = NetworkConfig.tiny().unet
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, config.in_channels, frames, height, width, generator=generator)
    context = torch.randn(batch, 77 + 16 * frames, config.context_dim, generator=generator)
    return x, torch.full((batch,), 500), context, torch.full((batch,), 30)


def test_tiny_unet_shapes_determinism_and_save_load(tmp_path) -> None:
    config = NetworkConfig.tiny().unet
    torch.manual_seed(1)
    unet = UNet3D(config).eval()
    torch.manual_seed(1)
    same_seed = UNet3D(config).eval()
    x, t, context, fps = tiny_inputs(frames=3, height=16, width=24, batch=2)
    with torch.no_grad():
        y = unet(x, t, context, fps)
        assert y.shape == (2, config.out_channels, 3, 16, 24)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(same_seed(x, t, context, fps), y, atol=0, rtol=0)

        path = tmp_path / "unet.safetensors"
        save_file(unet.state_dict(), path)
        reloaded = UNet3D(config).eval()
        reloaded.load_state_dict(load_file(path), strict=True)
        torch.testing.assert_close(reloaded(x, t, context, fps), y, atol=0, rtol=0)


def test_batch_elements_are_independent() -> None:
    torch.manual_seed(2)
    unet = UNet3D(NetworkConfig.tiny().unet).eval()
    x, t, context, fps = tiny_inputs(batch=2)
    t = torch.tensor([100, 900])
    with torch.no_grad():
        both = unet(x, t, context, fps)
        second = unet(x[1:], t[1:], context[1:], fps[1:])
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=0)


def test_bfloat16_forward_follows_float32() -> None:
    torch.manual_seed(3)
    unet = UNet3D(NetworkConfig.tiny().unet).eval()
    x, t, context, fps = tiny_inputs()
    with torch.no_grad():
        reference = unet(x, t, context, fps)
        y = unet.to(torch.bfloat16)(x.bfloat16(), t, context.bfloat16(), fps)
    assert y.dtype == torch.bfloat16
    relative = (y.float() - reference).norm() / reference.norm()
    assert relative < 0.05


def test_inputs_of_the_wrong_shape_are_refused() -> None:
    unet = UNet3D(NetworkConfig.tiny().unet)
    x, t, context, fps = tiny_inputs(frames=4)
    with pytest.raises(ValueError, match=r"77 text \+ 16 image tokens x 4 frames"):
        unet(x, t, context[:, :-16], fps)
    with pytest.raises(ValueError, match=r"expected \[B, 20, T, h, w\]"):
        unet(x[:, :16], t, context, fps)

"""The window pipeline: the authors' whole 5-step DDIM run, and the tiny network end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from geo4d.core.errors import Geo4DError
from geo4d.core.network.checkpoint import (
    build_part,
    fill_modules,
    split_model_state,
    split_pointmap_vae_state,
)
from geo4d.core.network.clip import constant_context
from geo4d.core.network.config import (
    NetworkConfig,
    ResamplerConfig,
    TextTowerConfig,
    UNetConfig,
    VAEConfig,
    VisualTowerConfig,
)
from geo4d.core.network.loading import load_weights, random_network
from geo4d.core.network.network_file import write_network_file
from geo4d.core.network.window_pipeline import WindowPipeline

GOLDEN = Path(__file__).parents[2] / "data" / "golden"
# Golden set A (see tests/data/golden/*.json): 4 frames, 16x16 latents, VAE downsampling 2.
GOLDEN_CONFIG = NetworkConfig(
    unet=UNetConfig(
        model_channels=32, channel_mult=(1, 2, 1, 1), head_channels=16, context_dim=8, temporal_length=4
    ),
    resampler=ResamplerConfig(
        dim=8, depth=2, dim_head=4, heads=3, embedding_dim=24, output_dim=8, video_length=4
    ),
    text=TextTowerConfig(width=8, heads=2, layers=3, embed_dim=8),
    visual=VisualTowerConfig(width=24, heads=2, layers=2, embed_dim=8),
    vae=VAEConfig(channels=32, channel_mult=(1, 2), num_res_blocks=1, adaptor_channels=32),
)
TINY = NetworkConfig.tiny()
TWO_STEPS = {"steps": 2, "decode_batch": 16}
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("single_thread")


def golden_weights(component: str, prefix: str) -> dict[str, torch.Tensor]:
    tensors = load_file(GOLDEN / f"{component}.safetensors")
    return {
        prefix + key.removeprefix("weights."): value
        for key, value in tensors.items()
        if key.startswith("weights.")
    }


@pytest.fixture(scope="module")
def golden_run() -> tuple[WindowPipeline, dict[str, torch.Tensor]]:
    """The golden UNet and VAE through our loader; the golden run decodes point maps with the same VAE."""
    model_state = golden_weights("unet", "model.diffusion_model.") | golden_weights(
        "vae", "first_stage_model."
    )
    tensors, unexpected = split_model_state(model_state, GOLDEN_CONFIG, ["unet", "vae"])
    tensors["pointmap_vae"], vae_unexpected = split_pointmap_vae_state(
        golden_weights("vae", "model."), GOLDEN_CONFIG
    )
    assert unexpected == vae_unexpected == []
    with torch.device("meta"):
        modules = {part: build_part(part, GOLDEN_CONFIG) for part in tensors}
    fill_modules(modules, tensors, GOLDEN_CONFIG, "golden")
    ddim = load_file(GOLDEN / "ddim.safetensors")
    model = WindowPipeline(
        GOLDEN_CONFIG, modules["unet"], modules["vae"], modules["pointmap_vae"], ddim["intermediate.context"]
    )
    return model, ddim


@torch.no_grad()
def test_whole_ddim_run_matches_the_authors(golden_run):
    model, ddim = golden_run
    images = ddim["input.videos"][0].permute(1, 0, 2, 3)  # [T, 3, H, W] in [-1, 1]
    c_concat = model.encode_frames(images, ddim["input.posterior_noise"][:, 0], 8)
    torch.testing.assert_close(c_concat, ddim["intermediate.c_concat"], rtol=0, atol=2e-5)
    latents = model.denoise(c_concat, ddim["input.fs"].item(), ddim["input.x_T"], model.sampler(0))
    torch.testing.assert_close(latents, ddim["output.final_latent"], rtol=0, atol=5e-5)

    decoded = model.decode_latents(ddim["output.final_latent"], 8)
    expected = ddim["output.decoded"][0]  # [11, T, H, W]: xyz, raw sigma, ray dir, ray moment, disparity
    ours = torch.cat(
        [
            decoded.point_map.permute(3, 0, 1, 2),
            decoded.point_uncertainty[None],
            decoded.ray_direction.permute(3, 0, 1, 2),
            decoded.ray_moment.permute(3, 0, 1, 2),
            decoded.disparity[None],
        ]
    )
    torch.testing.assert_close(ours, expected, rtol=0, atol=5e-5)


@torch.no_grad()
def test_posterior_mean_option(golden_run):
    model, ddim = golden_run
    images = ddim["input.videos"][0].permute(1, 0, 2, 3)
    mean = ddim["intermediate.posterior_mean"] * TINY.vae.scale_factor
    torch.testing.assert_close(model.encode_frames(images, None, 8), mean, rtol=0, atol=2e-5)


@pytest.fixture(scope="module")
def tiny_parts() -> dict[str, torch.nn.Module]:
    """Every part of a randomly initialised tiny network, CLIP towers included."""
    torch.manual_seed(1)
    parts = ("unet", "vae", "pointmap_vae", "text", "visual", "resampler")
    return {part: build_part(part, TINY).eval().requires_grad_(False) for part in parts}


@pytest.fixture(scope="module")
def tiny_model(tiny_parts) -> WindowPipeline:
    context = constant_context(tiny_parts["text"], tiny_parts["visual"], tiny_parts["resampler"])
    return WindowPipeline(TINY, tiny_parts["unet"], tiny_parts["vae"], tiny_parts["pointmap_vae"], context)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(16, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def prediction(tiny_model, frames):
    return tiny_model.predict_window(frames, fps=24, frame_indices=np.arange(8, 24), seed=5, **TWO_STEPS)


def assert_same_prediction(first, second, atol: float = 0.0) -> None:
    """Equal maps: bit for bit from one model; within atol from a reloaded copy (other memory layout)."""
    for name in ("frames", "point_map", "point_confidence", "disparity", "ray_direction", "ray_moment"):
        torch.testing.assert_close(getattr(first, name), getattr(second, name), rtol=0, atol=atol, msg=name)


def test_window_prediction_shapes(prediction):
    assert prediction.point_map.shape == prediction.ray_direction.shape == prediction.ray_moment.shape
    assert prediction.point_map.shape == (16, 64, 64, 3)
    assert prediction.disparity.shape == prediction.point_confidence.shape == (16, 64, 64)
    assert torch.equal(prediction.frames, torch.arange(8, 24))
    for value in (prediction.point_map, prediction.disparity, prediction.ray_moment):
        assert value.dtype == torch.float32 and torch.isfinite(value).all()
    assert (prediction.point_confidence > 0).all()


def test_window_prediction_is_seeded(tiny_model, frames, prediction):
    again = tiny_model.predict_window(frames, fps=24, frame_indices=np.arange(8, 24), seed=5, **TWO_STEPS)
    assert_same_prediction(prediction, again)
    other = tiny_model.predict_window(frames, fps=24, frame_indices=np.arange(8, 24), seed=6, **TWO_STEPS)
    assert (other.point_map - prediction.point_map).abs().max() > 1e-4


def test_saved_network_file_predicts_the_same(tmp_path, tiny_model, tiny_parts, frames, prediction):
    path = tmp_path / "tiny.safetensors"
    write_network_file(path, tiny_parts, tiny_model.context, TINY, torch.float32)
    loaded = load_weights(path, None, CPU, torch.float32)
    assert loaded.config == TINY
    assert_same_prediction(
        prediction, loaded.predict_window(frames, 24, np.arange(8, 24), seed=5, **TWO_STEPS), atol=1e-5
    )


def test_published_format_files_predict_the_same(
    tmp_path, tiny_model, tiny_parts, frames, prediction, write_published_checkpoints
):
    model_path, vae_path = write_published_checkpoints(tmp_path, tiny_parts, TINY)
    loaded = load_weights(model_path, vae_path, CPU, torch.float32, TINY)
    torch.testing.assert_close(loaded.context, tiny_model.context, rtol=0, atol=0)
    assert_same_prediction(
        prediction, loaded.predict_window(frames, 24, np.arange(8, 24), seed=5, **TWO_STEPS), atol=1e-5
    )


@pytest.mark.parametrize(
    "shape, dtype, message",
    [
        ((15, 64, 64, 3), np.uint8, "16 RGB frames as uint8"),
        ((16, 64, 64, 3), np.float32, "16 RGB frames as uint8"),
        ((16, 64, 96, 3), np.uint8, "not a multiple of 64 pixels"),
    ],
)
def test_bad_frames_are_refused(tiny_model, shape, dtype, message):
    with pytest.raises(Geo4DError, match=message):
        tiny_model.predict_window(np.zeros(shape, dtype=dtype), 24, None, 0, **TWO_STEPS)


def test_decode_batch_is_validated(tiny_model, frames):
    with pytest.raises(ValueError, match="decode_batch"):
        tiny_model.predict_window(frames, 24, None, 0, steps=2, decode_batch=0)


def test_confidence_is_inverse_softplus_of_the_head(tiny_model):
    latents = torch.randn(1, 16, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        decoded = tiny_model.decode_latents(latents, 16)
    weight = 1 / F.softplus(decoded.point_uncertainty)
    assert weight.shape == (16, 64, 64) and (weight > 0).all()


def test_full_network_window_shapes_on_meta():
    """The published network's whole window path at 512x320x16, shapes only (meta device, no memory)."""
    model = random_network(NetworkConfig.full(), device="meta")
    frames = np.zeros((16, 320, 512, 3), dtype=np.uint8)
    prediction = model.predict_window(frames, 30, None, 0, steps=1, decode_batch=64)
    assert prediction.point_map.shape == (16, 320, 512, 3) and prediction.point_map.is_meta
    assert prediction.disparity.shape == prediction.point_confidence.shape == (16, 320, 512)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_full_window_on_cuda_in_bf16_fits_the_memory_target():
    """Random full-size weights in bf16 at 512x320x16: finite maps, seeded, peak memory under 24 GB."""
    model = random_network(NetworkConfig.full(), device="cuda", dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16 and model.context.dtype == torch.bfloat16
    frames = np.random.default_rng(0).integers(0, 256, size=(16, 320, 512, 3), dtype=np.uint8)
    torch.cuda.reset_peak_memory_stats()
    first = model.predict_window(frames, 24, None, 3, steps=0, decode_batch=8)
    assert torch.cuda.max_memory_allocated() < 24e9
    assert first.point_map.device.type == "cuda" and first.point_map.dtype == torch.float32
    assert all(torch.isfinite(m).all() for m in (first.point_map, first.disparity, first.ray_moment))
    second = model.predict_window(
        frames, 24, None, 3, steps=0, decode_batch=8
    )  # GPU kernels need not be bitwise repeatable
    torch.testing.assert_close(second.point_map, first.point_map, rtol=2e-2, atol=2e-2)

"""Each frame encoded once per clip: the same c_concat bit for bit as encoding every window's frames, and
fewer encoder calls through the window predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from einops import rearrange

from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.frame_posteriors import FramePosteriors
from geo4d.core.network.loading import random_network
from geo4d.core.network.window_pipeline import WindowPipeline
from geo4d.core.network.window_predictor import WindowPredictor
from geo4d.core.progress import Reporter
from geo4d.core.settings import ReconstructionSettings
from geo4d.core.windows import plan_windows

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model() -> WindowPipeline:
    return random_network(NetworkConfig.tiny(), seed=2)


def clip_frames(count: int) -> np.ndarray:
    """[count, 64, 64, 3] uint8 frames of a smooth moving pattern."""
    y, x = np.mgrid[:64, :64]
    t = np.arange(count)[:, None, None]
    channels = [np.sin(x / 7 + t / 3), np.cos(y / 5 - t / 4), np.sin((x + y) / 9 + t / 5)]
    return (127.5 * (1 + np.stack(channels, axis=-1))).astype(np.uint8)


def window_images(frames: np.ndarray) -> torch.Tensor:
    return rearrange(torch.from_numpy(frames), "l h w c -> l c h w").float() / 127.5 - 1.0


def test_shared_posteriors_give_each_window_the_latents_of_its_own_encode(model):
    frames = clip_frames(28)
    plan = plan_windows(len(frames), 16, 4)
    posteriors = FramePosteriors(model, frames, 8)
    for window in range(plan.num_windows):
        indices = plan.frame_indices[window]
        noise = torch.randn((16, 4, 8, 8), generator=torch.Generator().manual_seed(window))
        with torch.inference_mode():
            shared = model.sample_latents(*posteriors.moments(indices, Reporter()), noise)
            own = model.encode_frames(window_images(frames[indices]), noise, 8)
        assert torch.equal(shared, own), window
    assert posteriors.encoded_frames == 32 < 16 * plan.num_windows  # 28 frames; the last call read 4 again


def test_the_predictor_encodes_each_frame_once(model):
    frames = clip_frames(24)
    plan = plan_windows(len(frames), 16, 4)
    encoded = []
    hook = model.vae.autoencoder.encoder.register_forward_hook(
        lambda _, args, out: encoded.append(len(args[0]))
    )
    try:
        predictor = WindowPredictor(
            model, ReconstructionSettings(steps=1, seed=123, window_batch=2, decode_batch=8)
        )
        predictions, _ = predictor.predict(frames, 24.0, plan, Reporter())
    finally:
        hook.remove()
    assert len(predictions) == plan.num_windows == 3
    assert encoded == [8, 8, 8]  # the per-window path encoded 3 x 16 frames
    # The last window ran alone: bit for bit what predict_window gives it, encoding its own frames.
    indices = plan.frame_indices[2]
    alone = model.predict_window(frames[indices], 24.0, indices, 123 + 2, steps=1, decode_batch=8)
    for name in ("point_map", "point_confidence", "disparity", "ray_direction", "ray_moment"):
        assert torch.equal(getattr(predictions[2], name), getattr(alone, name)), name

"""The reconstruction pipeline end to end: a real synthetic video through a tiny Geo4D network into a result
folder, progress and cancel, batched windows, model loading, and every kind of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from geo4d.core.cli import build_parser
from geo4d.core.commands import reconstruct as reconstruct_command
from geo4d.core.errors import Cancelled, Geo4DError
from geo4d.core.frame_size import choose_model_size
from geo4d.core.model_choice import TINY_MODEL, TINY_WEIGHTS, model_files
from geo4d.core.network.checkpoint import INFERENCE_PARTS, build_part
from geo4d.core.network.config import NetworkConfig
from geo4d.core.network.loading import random_network, resolve_device, resolve_dtype
from geo4d.core.network.network_file import write_network_file
from geo4d.core.network.window_pipeline import WindowPipeline
from geo4d.core.network.window_predictor import WindowPredictor
from geo4d.core.out_of_memory import out_of_memory_message
from geo4d.core.progress import Reporter
from geo4d.core.reconstruction import (
    ReconstructionSettings,
    load_model,
    reconstruct,
    reconstruct_frames,
    reconstruct_to_folder,
)
from geo4d.core.result import Reconstruction, read_description, read_frame_points
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic
from geo4d.core.video import read_frames, resize_frames
from geo4d.core.video_writer import write_video
from geo4d.core.windows import plan_windows

TINY = NetworkConfig.tiny()
# Forced 64x64 network input and one DDIM step keep each window at a few seconds on a CPU.
FAST = ReconstructionSettings(steps=1, size=(64, 64), max_points_per_frame=500)


def tiny_network_file(path: Path, seed: int = 0) -> Path:
    """A random-weight tiny network in our single-file format (the format of the shipped model)."""
    model = random_network(TINY, seed)
    modules = {"unet": model.unet, "vae": model.vae, "pointmap_vae": model.pointmap_vae}
    write_network_file(path, modules, model.context, TINY, torch.float32)
    return path


@pytest.fixture(scope="module")
def synthetic_clip(tmp_path_factory) -> Path:
    """A 20-frame synthetic video (two windows at stride 4) with its exact ground truth beside it."""
    folder = tmp_path_factory.mktemp("clip") / "scene"
    return write_synthetic(folder, SceneConfig(frames=20, width=128, height=80, seed=91)) / VIDEO_NAME


@pytest.fixture(scope="module")
def network_file(tmp_path_factory) -> Path:
    return tiny_network_file(tmp_path_factory.mktemp("model") / "tiny-random.safetensors")


@pytest.fixture(scope="module")
def tiny_model(network_file) -> WindowPipeline:
    return load_model(network_file, "cpu")


@pytest.fixture(scope="module")
def finished_run(synthetic_clip, network_file, tmp_path_factory):
    """One whole run, model given by path, two windows in one batch: (result folder, progress events)."""
    events = []
    output = tmp_path_factory.mktemp("runs") / "result"
    settings = ReconstructionSettings(steps=1, size=(64, 64), max_points_per_frame=500, window_batch=2)
    folder = reconstruct_to_folder(
        synthetic_clip, output, str(network_file), settings, progress=events.append
    )
    return folder, events


def test_end_to_end_writes_a_complete_result(finished_run, synthetic_clip):
    folder, _ = finished_run
    result = Reconstruction.load(folder)
    assert result.num_frames == 20 and (result.height, result.width) == (64, 64)
    np.testing.assert_array_equal(result.source_frames, np.arange(20))
    assert np.isfinite(result.camera_to_world).all()
    np.testing.assert_allclose(result.camera_to_world[0], np.eye(4), atol=1e-9)
    assert result.intrinsics.fx > 0 and (result.intrinsics.cx, result.intrinsics.cy) == (32.0, 32.0)
    assert result.valid_mask().any()
    # Colours are the decoded video frames at the network size.
    frames = read_frames(synthetic_clip, size=(64, 64)).frames
    np.testing.assert_array_equal(result.color, frames)
    assert result.source_video == str(synthetic_clip.resolve())
    assert set(result.timings) == {"load_s", "decode_s", "predict_s", "align_s", "motion_s", "total_s"}
    assert result.motion is not None and result.motion.score.shape == result.depth.shape
    assert not read_description(folder).split  # full frames by default
    assert all(seconds >= 0 for seconds in result.timings.values())
    settings = result.settings
    assert settings["reconstruction"]["steps"] == 1 and settings["reconstruction"]["size"] == [64, 64]
    assert settings["windows"] == 2 and settings["window_batch"] == 2 and settings["device"] == "cpu"
    assert all(len(read_frame_points(folder, i)) <= 500 for i in range(20))
    assert read_description(folder).num_frames == 20


def test_split_points_write_the_static_cloud_and_moving_frames(synthetic_clip, tiny_model, tmp_path):
    folder = reconstruct_to_folder(
        synthetic_clip, tmp_path / "split", tiny_model, replace(FAST, points="split")
    )
    description = read_description(folder)
    assert description.split and (folder / "static.ply").is_file()
    moving = Reconstruction.load(folder).motion.moving()
    assert sum(len(read_frame_points(folder, index)) for index in range(20)) <= moving.sum()


def test_progress_events_follow_the_stages(finished_run):
    _, events = finished_run
    stages = [event.stage for event in events]
    order = [stage for index, stage in enumerate(stages) if index == 0 or stages[index - 1] != stage]
    assert order == ["decode", "predict", "align", "save"]
    predict = [event for event in events if event.stage == "predict"]
    assert {event.total for event in predict} == {2}
    assert predict[-1].done == 2 and "DDIM step 1/1" in predict[1].message
    assert [event.done for event in events if event.stage == "decode"][-1] == 20
    assert events[-1].stage == "save" and events[-1].done == events[-1].total == 1


def test_cancel_stops_within_a_second_and_writes_nothing(synthetic_clip, tiny_model, tmp_path):
    asked = []

    def cancel() -> bool:
        return bool(asked)

    def progress(event) -> None:
        if event.stage == "predict" and "DDIM step" in event.message and not asked:
            asked.append(time.perf_counter())

    output = tmp_path / "out" / "result"
    with pytest.raises(Cancelled):
        reconstruct_to_folder(synthetic_clip, output, tiny_model, FAST, progress, cancel)
    assert time.perf_counter() - asked[0] < 1.0
    assert not output.exists()
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


def test_cancel_during_decoding_and_alignment(synthetic_clip, tiny_model):
    with pytest.raises(Cancelled):
        reconstruct(synthetic_clip, tiny_model, FAST, cancel=lambda: True)


def test_batched_windows_equal_geo4d_predict_window(synthetic_clip, tiny_model):
    """Two windows in one UNet batch give what WindowPipeline.predict_window gives for each alone."""
    settings = ReconstructionSettings(steps=1, size=(64, 64), window_batch=2)
    clip = read_frames(synthetic_clip, size=(64, 64))
    plan = plan_windows(len(clip.frames))
    batched, used = WindowPredictor(tiny_model, settings).predict(clip.frames, clip.fps, plan, Reporter())
    assert used == 2 and len(batched) == 2
    window = 1
    alone = tiny_model.predict_window(
        clip.frames[plan.frame_indices[window]],
        clip.fps,
        plan.frame_indices[window],
        settings.seed + window,
        steps=1,
        decode_batch=settings.decode_batch,
    )
    np.testing.assert_array_equal(batched[window].frames.numpy(), plan.frame_indices[window])
    # The UNet's float32 GroupNorm sums in a batch-dependent order; a random network amplifies those 1e-7
    # differences to about 3e-3 of the output; another noise seed or window changes it by about 100 %.
    for name in ("point_map", "point_confidence", "disparity", "ray_direction", "ray_moment"):
        ours, theirs = getattr(batched[window], name), getattr(alone, name)
        error = float((ours - theirs).abs().mean())
        assert error < 1e-2 * float(theirs.abs().mean()), name


def test_short_video_is_padded_with_a_warning(tmp_path, tiny_model):
    video = (
        write_synthetic(tmp_path / "short", SceneConfig(frames=6, width=64, height=64, seed=5)) / VIDEO_NAME
    )
    result = reconstruct(video, tiny_model, FAST)
    assert result.num_frames == 6
    assert any("only 6 frames" in warning and "repeated" in warning for warning in result.warnings)


def test_steps_a_model_never_learned_are_warned_about(tmp_path, tiny_model):
    """tiny was trained at t = 999 alone (NetworkConfig.sampling_steps_only): 2 steps get a warning."""
    video = (
        write_synthetic(tmp_path / "short", SceneConfig(frames=16, width=64, height=64, seed=5)) / VIDEO_NAME
    )
    assert not any("DDIM step" in warning for warning in reconstruct(video, tiny_model, FAST).warnings)
    result = reconstruct(video, tiny_model, replace(FAST, steps=2))
    assert result.settings["sampling_steps"] == 2
    assert any(
        "trained to sample in 1 DDIM step only" in warning and "steps to 0" in warning
        for warning in result.warnings
    )


def test_range_outside_the_video(synthetic_clip, tiny_model):
    with pytest.raises(Geo4DError, match="Choose a range inside the video"):
        reconstruct(synthetic_clip, tiny_model, ReconstructionSettings(start=15, end=40, size=(64, 64)))
    with pytest.raises(Geo4DError, match="Choose a range inside the video"):
        reconstruct(synthetic_clip, tiny_model, ReconstructionSettings(start=25, size=(64, 64)))


def test_frames_in_memory_take_the_same_path_scaled_and_cropped_like_a_video(synthetic_clip, tiny_model):
    frames = read_frames(synthetic_clip).frames  # 128x80 RGB, as image files would give them
    settings = ReconstructionSettings(start=2, end=18, steps=1, size=(64, 64))
    result = reconstruct_frames(frames, 30.0, tiny_model, settings)
    resized, mapping = resize_frames(frames[2:18], (64, 64))
    assert (mapping.scale_x, mapping.crop_left, mapping.crop_top) == (102 / 128, 19, 0)  # cover, crop centre
    np.testing.assert_array_equal(result.color, resized)
    np.testing.assert_array_equal(result.source_frames, np.arange(2, 18))
    assert result.source_video is None and result.settings["frame_mapping"]["crop_left"] == 19
    assert result.settings["video"] == {"width": 128, "height": 80, "rotation": 0, "fps": 30.0}
    assert result.settings["windows"] == 1 and np.isfinite(result.camera_to_world).all()
    with pytest.raises(Geo4DError, match=r"uint8 RGB frames of shape \[T, H, W, 3\]"):
        reconstruct_frames(frames.astype(np.float32), 30.0, tiny_model, settings)
    with pytest.raises(Geo4DError, match="Frames 2..29 were requested of 20 frames"):
        reconstruct_frames(frames, 30.0, tiny_model, replace(settings, end=30))


def test_unreadable_video(tmp_path, tiny_model):
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(Geo4DError, match="cannot be opened as a video"):
        reconstruct(garbage, tiny_model, FAST)
    with pytest.raises(Geo4DError, match="does not exist"):
        reconstruct(tmp_path / "missing.mp4", tiny_model, FAST)


def test_unknown_model_and_missing_checkpoints(tmp_path, monkeypatch):
    with pytest.raises(Geo4DError, match="Unknown model 'small'.*'tiny'"):
        load_model("small")
    with pytest.raises(Geo4DError, match="Checkpoint not found"):
        load_model(tmp_path / "model.ckpt")
    with pytest.raises(Geo4DError, match="Checkpoint not found"):
        load_model(str(tmp_path / "geo4d.safetensors"))
    (tmp_path / "model.ckpt").write_bytes(b"")
    with pytest.raises(Geo4DError, match="vae.ckpt was not found|point-map VAE .* was not found"):
        load_model(tmp_path / "model.ckpt")
    monkeypatch.setattr(
        "geo4d.core.model_choice.TINY_WEIGHTS", tmp_path / "weights" / "geo4d-tiny.safetensors"
    )
    with pytest.raises(Geo4DError, match="built-in model 'tiny' is missing"):
        load_model("tiny")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_unavailable(synthetic_clip, network_file, tiny_model):
    with pytest.raises(Geo4DError, match="CUDA was requested.*'cpu'"):
        resolve_device("cuda")
    with pytest.raises(Geo4DError, match="CUDA was requested"):
        reconstruct(synthetic_clip, str(network_file), ReconstructionSettings(device="cuda"))
    with pytest.raises(Geo4DError, match="'cuda' was requested, but the given model is loaded on cpu"):
        reconstruct(synthetic_clip, tiny_model, ReconstructionSettings(device="cuda"))
    assert resolve_device("auto").type == "cpu"
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(Geo4DError, match="fp16 needs a CUDA GPU"):
        resolve_dtype("fp16", torch.device("cpu"))


def test_out_of_memory_messages_name_the_setting():
    cuda = torch.device("cuda")
    assert "decode_batch" in out_of_memory_message("predict", cuda, FAST.decode_batch)
    assert "--start/--end" in out_of_memory_message("align", cuda)
    assert "stride" in out_of_memory_message("align", cuda)
    assert "precision" in out_of_memory_message("load", cuda)
    assert out_of_memory_message("predict", cuda, FAST.decode_batch).startswith(
        "Out of memory on the GPU while predicting"
    )
    assert out_of_memory_message("predict", torch.device("cpu")).startswith("Out of memory on the CPU")


def test_real_out_of_memory_becomes_a_clear_error(synthetic_clip, network_file):
    """A process whose address space is capped (1.5 GB above the loaded model) runs out of memory for real
    when a window at 1024x1024 needs several GB."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        import torch
        from geo4d.core.errors import Geo4DError
        from geo4d.core.reconstruction import ReconstructionSettings, load_model, reconstruct
        model = load_model({str(network_file)!r}, "cpu")
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 1536 * 2**20, resource.RLIM_INFINITY))
        try:
            reconstruct({str(synthetic_clip)!r}, model, ReconstructionSettings(steps=1, size=(1024, 1024)))
        except Geo4DError as error:
            print("GEO4D-ERROR:", error)
        """
    )
    # Few malloc arenas: decoder and torch threads then reserve little address space of their own.
    environment = dict(os.environ, MALLOC_ARENA_MAX="2")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=environment
    )
    assert "GEO4D-ERROR: Out of memory on the CPU while" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "decode_batch" in done.stdout or "shorter frame range" in done.stdout


def test_settings_are_validated():
    for bad in ({"stride": 0}, {"stride": 16}, {"steps": -1}, {"end": 0}, {"device": "gpu"}, {"seed": -1}):
        with pytest.raises(ValueError, match="ReconstructionSettings"):
            ReconstructionSettings(**bad)
    with pytest.raises(ValueError, match="size"):
        ReconstructionSettings(size=(500, 320))
    with pytest.raises(ValueError, match="precision"):
        ReconstructionSettings(precision="int8")


def test_default_steps_are_the_networks_own(tiny_model):
    """steps 0 takes the network's sampling_steps (tiny 1, the published network 5); a number overrides it."""
    assert WindowPredictor(tiny_model, ReconstructionSettings()).steps == TINY.sampling_steps == 1
    assert WindowPredictor(tiny_model, ReconstructionSettings(steps=3)).steps == 3
    published = replace(TINY, sampling_steps=NetworkConfig.full().sampling_steps)
    model = WindowPipeline(
        published, tiny_model.unet, tiny_model.vae, tiny_model.pointmap_vae, tiny_model.context
    )
    assert WindowPredictor(model, ReconstructionSettings()).steps == 5
    assert model.sampler(0).timesteps == [999, 799, 599, 399, 199]
    # A pipeline's sampler for steps 0 is the network's own.
    parts = (tiny_model.unet, tiny_model.vae, tiny_model.pointmap_vae, tiny_model.context)
    assert WindowPipeline(TINY, *parts).sampler(0).timesteps == [999]


def test_model_size_comes_from_the_network():
    sizes = TINY.input_sizes
    chosen = choose_model_size(1920, 1080, sizes=sizes)
    assert chosen in sizes
    assert choose_model_size(1080, 1920, sizes=sizes) == chosen[::-1]


def test_published_format_checkpoint_loads_at_tiny_widths(tmp_path, write_published_checkpoints):
    torch.manual_seed(3)
    modules = {part: build_part(part, TINY) for part in (*INFERENCE_PARTS, "text", "visual", "resampler")}
    model_path, vae_path = write_published_checkpoints(tmp_path, modules, TINY)
    assert model_files(model_path) == (model_path, vae_path)
    model = load_model(model_path, "cpu")
    assert model.config.unet.model_channels == TINY.unet.model_channels
    for part in INFERENCE_PARTS:
        loaded = getattr(model, part).state_dict()
        for name, tensor in modules[part].state_dict().items():
            torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
    moved = tmp_path / "elsewhere.ckpt"
    vae_path.rename(moved)
    assert model_files(f"{model_path},{moved}") == (model_path, moved)
    assert load_model(f"{model_path},{moved}", "cpu").config == model.config


def test_output_that_is_not_a_result_is_refused_before_work(tmp_path, synthetic_clip, tiny_model):
    occupied = tmp_path / "photos"
    occupied.mkdir()
    (occupied / "holiday.jpg").write_bytes(b"x")
    started = time.perf_counter()
    with pytest.raises(Geo4DError, match="not an earlier Geo4D result.*holiday.jpg"):
        reconstruct_to_folder(synthetic_clip, occupied, tiny_model, FAST)
    assert time.perf_counter() - started < 1.0 and (occupied / "holiday.jpg").exists()


def phone_video(path: Path, frames: int = 16) -> Path:
    """A phone-like clip: 1920x1080 H.264 stored sideways with rotation metadata, shown as 1080x1920 portrait."""
    import av

    scene = write_synthetic(
        path.parent / "phone-scene", SceneConfig(frames=frames, width=270, height=480, seed=77)
    )
    portrait = (
        read_frames(scene / VIDEO_NAME).frames.repeat(4, axis=1).repeat(4, axis=2)
    )  # [T, 1920, 1080, 3]
    stored = np.ascontiguousarray(np.rot90(portrait, k=1, axes=(1, 2)))  # turned back: [T, 1080, 1920, 3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "23", "preset": "ultrafast"}
        stream.set_display_rotation(-90)
        for image in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory) -> Path:
    """One phone-like clip for the module's command-line runs, which only read it (encoding it takes seconds)."""
    return phone_video(tmp_path_factory.mktemp("phone") / "phone.mp4")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geo4d", *args], capture_output=True, text=True, timeout=600)


def test_phone_video_through_the_command_line_with_a_published_format_checkpoint(
    tmp_path, write_published_checkpoints, phone_clip
):
    torch.manual_seed(4)
    modules = {part: build_part(part, TINY) for part in (*INFERENCE_PARTS, "text", "visual", "resampler")}
    model_path, _ = write_published_checkpoints(tmp_path, modules, TINY)
    output = tmp_path / "phone-result"
    done = run_cli(
        "reconstruct", str(phone_clip), "-o", str(output), "--checkpoint", str(model_path), "--steps", "1"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    description = read_description(output)
    assert description.num_frames == 16
    assert description.height > description.width  # portrait, from the rotation metadata
    assert (description.width, description.height)[::-1] in TINY.input_sizes
    assert description.settings["video"] == {"width": 1080, "height": 1920, "rotation": 270, "fps": 30.0}
    for label in ("frames     16", "focal", "path", "times", "predict", "warnings"):
        assert label in done.stdout
    assert "predict" in done.stderr  # the progress bar


def test_command_line_bad_input_exits_with_a_message(tmp_path):
    video = write_video(tmp_path / "v.mp4", np.zeros((4, 64, 64, 3), dtype=np.uint8), fps=24)
    done = run_cli("reconstruct", str(video), "-o", str(tmp_path / "r"), "--model", "huge")
    assert done.returncode == 1 and "geo4d: error: Unknown model 'huge'" in done.stderr
    assert not (tmp_path / "r").exists()
    parser = build_parser([reconstruct_command])
    args = parser.parse_args(["reconstruct", str(video), "-o", "r", "--stride", "0"])
    with pytest.raises(Geo4DError, match="--stride = 0 .*1..15.*Change the option"):
        reconstruct_command.settings_from(args)
    args = parser.parse_args(["reconstruct", str(video), "-o", "r", "--points", "split"])
    assert reconstruct_command.settings_from(args, reconstruct_command.OPTIONS).points == "split"
    with pytest.raises(SystemExit):
        parser.parse_args(["reconstruct", str(video), "-o", "r", "--points", "half"])


@pytest.mark.skipif(not TINY_WEIGHTS.is_file(), reason="the trained tiny weights are not installed")
def test_phone_video_with_the_shipped_tiny_model(tmp_path, phone_clip):
    done = run_cli(
        "reconstruct", str(phone_clip), "-o", str(tmp_path / "result"), "--model", "tiny", "--device", "cpu"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    description = read_description(tmp_path / "result")
    assert description.num_frames == 16 and description.height > description.width
    assert description.intrinsics.fx > 0
    # The default steps are the shipped model's own: one DDIM step (core/weights/MODEL_CARD.md).
    assert description.settings["reconstruction"]["steps"] == 0
    assert description.settings["sampling_steps"] == 1


def test_tiny_warns_on_footage_that_is_not_a_synthetic_scene(tmp_path):
    """The embedded tiny model knows only synth's scenes; the same pictures without synth's tag warn."""
    scene = write_synthetic(tmp_path / "scene", SceneConfig(frames=16, width=64, height=64, seed=5))
    foreign = write_video(tmp_path / "foreign.mp4", Reconstruction.load(scene).color, 24.0)
    assert not any(
        "trained on synthetic scenes only" in w
        for w in reconstruct(scene / VIDEO_NAME, TINY_MODEL, FAST).warnings
    )
    # loaded first, as the Blender worker does: the model remembers it is the embedded tiny
    warned = reconstruct(foreign, load_model(TINY_MODEL, "cpu"), FAST).warnings
    assert any("'tiny' model was trained on synthetic scenes only" in w for w in warned), warned

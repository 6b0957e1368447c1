"""Reading the published Geo4D files: the full key set, tiny published-format files, and every error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from geo4d.core.errors import Geo4DError
from geo4d.core.network.checkpoint import (
    MODEL_DROPS,
    MODEL_PART_PREFIXES,
    build_part,
    fill_modules,
    load_published,
    split_model_state,
)
from geo4d.core.network.config import NetworkConfig

ALL_PARTS = (*MODEL_PART_PREFIXES, "pointmap_vae")
TINY = NetworkConfig.tiny()

pytestmark = pytest.mark.usefixtures("single_thread")


def test_every_published_key_maps_onto_the_full_network(published_shapes):
    """All 2554 keys: each fills one of our parameters with its shape or is dropped by a named rule."""
    assert len(published_shapes) == 2554
    state = {key: torch.empty(shape, device="meta") for key, shape in published_shapes.items()}
    config = NetworkConfig.full()
    tensors, unexpected = split_model_state(state, config, MODEL_PART_PREFIXES)
    assert unexpected == []
    dropped = [key for key in published_shapes if any(rule.matches(key) for rule in MODEL_DROPS)]
    # 13 schedule buffers, 14 encoder-adaptor and 20 decoder-adaptor keys, 6 CLIP text leftovers.
    assert len(dropped) == 53
    assert sum(len(part) for part in tensors.values()) + len(dropped) == 2554
    with torch.device("meta"):
        modules = {part: build_part(part, config) for part in MODEL_PART_PREFIXES}
    fill_modules(modules, tensors, config, "published key list", device="meta")  # raises on any gap
    for part, module in modules.items():
        assert len(module.state_dict()) == len(tensors[part])
        assert all(p.is_meta for p in module.parameters())


@pytest.fixture(scope="module")
def tiny_modules() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {part: build_part(part, TINY).eval() for part in ALL_PARTS}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny_modules, write_published_checkpoints) -> tuple[Path, Path]:
    return write_published_checkpoints(tmp_path_factory.mktemp("published"), tiny_modules, TINY)


@pytest.mark.parametrize("deepspeed", [False, True])
def test_tiny_published_files_load_every_tensor(
    tmp_path, tiny_modules, write_published_checkpoints, deepspeed
):
    model_path, vae_path = write_published_checkpoints(tmp_path, tiny_modules, TINY, deepspeed=deepspeed)
    loaded = load_published(model_path, vae_path, TINY, ALL_PARTS)
    for part, module in loaded.items():
        expected = tiny_modules[part].state_dict()
        state = module.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[name], expected[name]) for name in expected), part
        assert not module.training and not any(p.requires_grad for p in module.parameters())


def rewrite(source: Path, target: Path, change) -> Path:
    """Copy a tiny checkpoint with its state_dict changed in place by `change(state)`."""
    checkpoint = torch.load(source, weights_only=True)
    change(checkpoint["state_dict"])
    torch.save(checkpoint, target)
    return target


def expect_error(model_path, vae_path, *fragments: str, config: NetworkConfig = TINY) -> str:
    with pytest.raises(Geo4DError) as caught:
        load_published(model_path, vae_path, config, ALL_PARTS)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_file(tmp_path, tiny_files):
    expect_error(tmp_path / "nowhere.ckpt", tiny_files[1], "Checkpoint not found", "nowhere.ckpt")


def test_not_a_checkpoint(tmp_path, tiny_files):
    text = tmp_path / "notes.ckpt"
    text.write_text("these are not weights\n")
    expect_error(text, tiny_files[1], "is not a PyTorch checkpoint")
    listing = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], listing)
    expect_error(listing, tiny_files[1], "not a checkpoint: it has no state_dict of tensors")


def test_truncated_file(tmp_path, tiny_files):
    truncated = tmp_path / "model.ckpt"
    data = tiny_files[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    expect_error(truncated, tiny_files[1], "truncated or damaged", "download it again")


def test_files_swapped(tiny_files):
    model_path, vae_path = tiny_files
    expect_error(vae_path, model_path, "is the point-map VAE (vae.ckpt), not the Geo4D model")
    expect_error(model_path, model_path, "is the Geo4D model (model.ckpt), not the point-map VAE")


def test_missing_keys(tmp_path, tiny_files):
    def drop(state):
        for key in [k for k in state if k.startswith("model.diffusion_model.output_blocks.2.")]:
            del state[key]

    message = expect_error(rewrite(tiny_files[0], tmp_path / "m.ckpt", drop), tiny_files[1], "missing keys")
    assert "model.diffusion_model.output_blocks.2." in message and "(e.g. " in message


def test_unexpected_keys(tmp_path, tiny_files):
    def add(state):
        state["model.diffusion_model.extra.weight"] = torch.zeros(2)
        state["ema.decay"] = torch.zeros(())

    message = expect_error(
        rewrite(tiny_files[0], tmp_path / "m.ckpt", add), tiny_files[1], "unexpected keys 1"
    )
    assert "ema.decay" in message
    vae_extra = rewrite(
        tiny_files[1], tmp_path / "v.ckpt", lambda s: s.update({"model.extra.bias": torch.ones(1)})
    )
    expect_error(tiny_files[0], vae_extra, "unexpected keys 1: model.extra.bias")
    only_unet_extra = rewrite(
        tiny_files[0],
        tmp_path / "u.ckpt",
        lambda s: s.update({"model.diffusion_model.extra.weight": torch.zeros(2)}),
    )
    expect_error(only_unet_extra, tiny_files[1], "unexpected keys 1: model.diffusion_model.extra.weight")


def test_shape_mismatch(tmp_path, tiny_files):
    key = "model.diffusion_model.out.2.weight"
    changed = rewrite(
        tiny_files[0], tmp_path / "m.ckpt", lambda s: s.update({key: torch.zeros(16, 32, 1, 1)})
    )
    expect_error(
        changed, tiny_files[1], "shape mismatches 1", f"{key} [16, 32, 1, 1] (expected [16, 32, 3, 3])"
    )
    # The tiny files against the full configuration: every width differs.
    expect_error(*tiny_files, "shape mismatches", config=NetworkConfig.full())


class WritesAFile:
    """An object whose unpickling would create `marker`: loading must refuse it, not run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_code_is_refused_and_not_run(tmp_path, tiny_files):
    marker = tmp_path / "ran"
    checkpoint = torch.load(tiny_files[0], weights_only=True)
    checkpoint["hyper_parameters"] = WritesAFile(marker)
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save(checkpoint, unsafe)
    expect_error(unsafe, tiny_files[1], "holds Python objects besides tensors")
    assert not marker.exists()


def test_folder_given_as_checkpoint(tmp_path, tiny_files):
    folder = tmp_path / "weights"
    shutil.copytree(tiny_files[0].parent, folder)
    expect_error(folder, tiny_files[1], "is a folder; give the checkpoint file in it")

"""Fixtures shared across test folders: Geo4D checkpoints written in the authors' file layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from geo4d.core.cpu import apply_openmp_defaults

apply_openmp_defaults()  # before torch starts OpenMP: test processes share the CPU with their workers

import torch  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def write_published_checkpoints() -> Callable[..., tuple[Path, Path]]:
    """`write(folder, modules, config, deepspeed=False)` -> (model.ckpt, vae.ckpt) paths.

    `modules` holds our unet, vae, pointmap_vae, text, visual and resampler. The files use the published
    key names (`{"state_dict": ...}`, or DeepSpeed's `{"module": {"_forward_module." + key: ...}}`), and
    carry the keys the loader drops by rule too: the schedule buffers, adaptors and CLIP leftovers (named
    as in the published key list, zero-filled), and in vae.ckpt the encoder of the main VAE.
    """
    from geo4d.core.network.checkpoint import MODEL_DROPS, our_key_to_checkpoint, published_state_dict

    published = json.loads((DATA / "geo4d_state_dict_shapes.json").read_text())
    dropped = [key for key in published if any(rule.matches(key) for rule in MODEL_DROPS)]

    def write(folder: Path, modules: dict, config, deepspeed: bool = False) -> tuple[Path, Path]:
        files = published_state_dict(modules, config)
        files["model"].update({key: torch.zeros(1) for key in dropped})
        for name, tensor in modules["vae"].state_dict().items():
            if name.startswith(("autoencoder.encoder.", "autoencoder.quant_conv.")):
                files["vae"][our_key_to_checkpoint("pointmap_vae", name, config)] = tensor
        adaptor = "first_stage_model.encoder_adaptor."
        files["vae"].update(
            {
                "model." + k[len("first_stage_model.") :]: torch.zeros(1)
                for k in dropped
                if k.startswith(adaptor)
            }
        )
        paths = folder / "model.ckpt", folder / "vae.ckpt"
        for path, state in zip(paths, (files["model"], files["vae"]), strict=True):
            wrapped = (
                {"module": {"_forward_module." + k: v for k, v in state.items()}}
                if deepspeed
                else {"state_dict": state, "epoch": 3}
            )
            torch.save(wrapped, path)
        return paths

    return write


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The model setting of the embedded tiny model: "tiny" when its weights ship, else a random-weight
    tiny checkpoint in our converted format (random_network + write_network_file)."""
    import geo4d.core

    if (Path(geo4d.core.__file__).parent / "weights" / "geo4d-tiny.safetensors").is_file():
        return "tiny"
    from geo4d.core.network.config import NetworkConfig
    from geo4d.core.network.loading import random_network
    from geo4d.core.network.network_file import write_network_file

    network = random_network(NetworkConfig.tiny(), seed=0)
    path = tmp_path_factory.mktemp("tiny-model") / "geo4d-tiny-random.safetensors"
    modules = {"unet": network.unet, "vae": network.vae, "pointmap_vae": network.pointmap_vae}
    write_network_file(path, modules, network.context, network.config, torch.float32)
    return str(path)


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's small networks on one CPU thread (restored after): tiny convolutions gain nothing
    from threads, and on a shared, busy machine two spinning threads made one tiny UNet call 40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

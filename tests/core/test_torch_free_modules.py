"""The engine modules the Blender side and the settings rely on import without torch, diffusers or PyAV."""

import subprocess
import sys

import pytest

BLOCK_HEAVY = "import sys\nfor name in ('torch', 'diffusers', 'av'):\n    sys.modules[name] = None\n"


@pytest.mark.parametrize(
    "module", ["geo4d.core.model_choice", "geo4d.core.network.config", "geo4d.core.frame_size"]
)
def test_module_imports_without_torch_or_pyav(module):
    code = BLOCK_HEAVY + f"import {module}\n"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_model_choice_names_the_files_of_a_published_checkpoint(tmp_path):
    from geo4d.core.errors import Geo4DError
    from geo4d.core.model_choice import TINY_MODEL, TINY_WEIGHTS, model_files

    assert model_files(TINY_MODEL) == (TINY_WEIGHTS, None)
    model = tmp_path / "model.ckpt"
    with pytest.raises(Geo4DError, match="Checkpoint not found: the checkpoint .*model.ckpt does not exist"):
        model_files(str(model))
    model.write_bytes(b"")
    with pytest.raises(Geo4DError, match="point-map VAE .*vae.ckpt was not found"):
        model_files(str(model))
    (tmp_path / "vae.ckpt").write_bytes(b"")
    assert model_files(str(model)) == (model, tmp_path / "vae.ckpt")

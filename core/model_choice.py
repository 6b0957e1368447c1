"""Which Geo4D model a setting names and whether its files are there (no torch: the Blender side uses it).

A model setting is "tiny" (the embedded model), the path of a converted `.safetensors`, or the published
`model.ckpt` (its `vae.ckpt` beside it, or both given as "model.ckpt,vae.ckpt").
"""

from __future__ import annotations

from pathlib import Path

from .errors import Geo4DError

TINY_MODEL = "tiny"
# The embedded model's weights, shipped inside the package (core/weights/).
TINY_WEIGHTS = Path(__file__).resolve().parent / "weights" / "geo4d-tiny.safetensors"
PUBLISHED_VAE_NAME = "vae.ckpt"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")


def model_files(model: str | Path) -> tuple[Path, Path | None]:
    """(weights file, point-map VAE file or None) named by a model setting; Geo4DError when one is missing.

    "tiny": the trained model shipped in the package. A `.safetensors` path: our converted format (one
    file). A published `model.ckpt`: its `vae.ckpt` is taken from beside it, or given explicitly as
    "model.ckpt,vae.ckpt". Anything else that is neither a name nor an existing file is an unknown model.
    """
    text = str(model)
    if isinstance(model, str) and text == TINY_MODEL:
        if not TINY_WEIGHTS.is_file():
            raise Geo4DError(
                f"The built-in model 'tiny' is missing from this installation (expected {TINY_WEIGHTS}). "
                "Reinstall geo4d, train it with `python -m geo4d train`, or give a checkpoint file instead."
            )
        return TINY_WEIGHTS, None
    weights_text, _, vae_text = text.partition(",")
    weights = Path(weights_text).expanduser()
    looks_like_path = isinstance(model, Path) or bool(vae_text) or weights.suffix in CHECKPOINT_SUFFIXES
    looks_like_path = looks_like_path or "/" in weights_text or "\\" in weights_text
    if not weights.exists() and not looks_like_path:
        raise Geo4DError(
            f"Unknown model {text!r}. The built-in model is '{TINY_MODEL}'; otherwise give the path of a checkpoint: "
            "a .safetensors made by `python -m geo4d convert-checkpoint`, or the published Geo4D model.ckpt."
        )
    if not weights.is_file():
        raise Geo4DError(
            f"Checkpoint not found: the checkpoint {weights} does not exist. Check the path to your copy of "
            "the Geo4D weights (the model.ckpt or a converted .safetensors)."
        )
    if weights.suffix == ".safetensors":
        return weights, None
    vae = Path(vae_text).expanduser() if vae_text else weights.with_name(PUBLISHED_VAE_NAME)
    if not vae.is_file():
        raise Geo4DError(
            f"The point-map VAE {vae} was not found. The published model needs both files: put vae.ckpt beside "
            f"model.ckpt, or give both as 'model.ckpt,vae.ckpt'."
        )
    return weights, vae

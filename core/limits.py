"""The checks that settings dataclasses run when built, and the limits shared by several of them.

Torch- and av-free, so that the Blender side refuses a bad setting with the engine's own limits before a
worker starts. Each check raises SettingError naming the dataclass field; surfaces rename it for their users.
The reconstruction settings' own defaults and limits live in core/settings.py.
"""

from __future__ import annotations

import math

from .errors import SettingError

# The UNet halves a latent three times and the VAE works at 1/8: network input sizes are multiples of 64.
MODEL_SIZE_MULTIPLE = 64
MAX_MODEL_SIDE = 2048
MAX_SEED = 2**63 - 1
# Frame numbers and point counts stay within a 32-bit signed range.
MAX_COUNT = 1 << 31


def check_integer(owner: str, field: str, value: object, low: int, high: int, why: str = "") -> None:
    """Raise SettingError unless `value` is an int (not a bool) in [low, high]; `why` explains the limit."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SettingError(owner, field, value, f"an integer in {low}..{high}{why}")


def check_number(
    owner: str, field: str, value: object, low: float, high: float, allowed: str, include_low: bool = True
) -> None:
    """Raise SettingError unless `value` is a finite int or float (not a bool) in [low, high] (or (low, high])."""
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not (low <= value if include_low else low < value) or value > high:
        raise SettingError(owner, field, value, allowed)


def check_choice(owner: str, field: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise SettingError unless `value` is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise SettingError(owner, field, value, f"one of {', '.join(repr(choice) for choice in choices)}")


def check_model_size(owner: str, field: str, value: object) -> None:
    """Raise SettingError unless `value` is a forced network input (width, height) the UNet can take."""
    sides_ok = isinstance(value, tuple | list) and len(value) == 2
    sides_ok = sides_ok and all(
        isinstance(side, int)
        and not isinstance(side, bool)
        and 0 < side <= MAX_MODEL_SIDE
        and side % MODEL_SIZE_MULTIPLE == 0
        for side in value
    )
    if not sides_ok:
        raise SettingError(
            owner,
            field,
            value,
            f"(width, height), each a multiple of {MODEL_SIZE_MULTIPLE} up to {MAX_MODEL_SIDE}, e.g. (512, 320)",
        )

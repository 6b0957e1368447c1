"""Checks of values read from JSON (numbers in a range, lists, objects with given keys, texts): each
failure is a ValueError naming the field as the file spells it and showing the value found."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping

import numpy as np


def shown(value: object) -> str:
    """A short one-line rendering of a value for a message, as JSON spells it where it can."""
    for render in (json.dumps, repr):
        try:
            text = render(value)
        except (TypeError, ValueError, RecursionError):
            continue
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__} too large to show"


def one_line(error: BaseException) -> str:
    """An error's text on one line, at most 200 characters."""
    return " ".join(str(error).split())[:200]


def is_real(value: object) -> bool:
    """A JSON number: an int or float, never a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def is_integer(value: object) -> bool:
    """A JSON whole number: an int, never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def checked_real(
    value: object, name: str, low: float = -math.inf, high: float = math.inf, positive: bool = False
) -> float:
    """value as a finite float in [low, high] (above 0 if `positive`), or a ValueError naming `name`."""
    if positive:
        wanted = "a positive finite number"
    elif math.isinf(low) and math.isinf(high):
        wanted = "a finite number"
    elif math.isinf(high):
        wanted = f"a finite number of at least {low:g}"
    else:
        wanted = f"a number in {low:g}..{high:g}"
    if not is_real(value):
        raise ValueError(f"{name} is {shown(value)}; it must be {wanted}")
    try:
        number = float(value)
    except OverflowError as error:
        raise ValueError(f"{name} is {shown(value)}; it must be {wanted}") from error
    if not (math.isfinite(number) and low <= number <= high) or (positive and number <= 0):
        raise ValueError(f"{name} is {shown(value)}; it must be {wanted}")
    return number


def checked_integer(value: object, name: str, low: int, high: int) -> int:
    """value as an int in [low, high], or a ValueError naming `name`."""
    if not is_integer(value) or not low <= value <= high:
        raise ValueError(f"{name} is {shown(value)}; it must be a whole number in {low}..{high}")
    return int(value)


def checked_list(value: object, name: str, holding: str) -> list | tuple:
    """A JSON list (its entries unchecked); `holding` says what it should hold."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} is {shown(value)}; it must be a list of {holding}")
    return value


def checked_object(value: object, name: str, keys: tuple[str, ...]) -> Mapping:
    """A JSON object that holds at least `keys`."""
    if not isinstance(value, Mapping):
        holding = f" with {', '.join(keys)}" if keys else ""
        raise ValueError(f"{name} is {shown(value)}; it must be an object{holding}")
    missing = [key for key in keys if key not in value]
    if missing:
        raise ValueError(f"{name} lacks {', '.join(missing)}")
    return value


def checked_texts(value: object, name: str) -> tuple[str, ...]:
    """A JSON list of strings, as a tuple."""
    entries = checked_list(value, name, "texts")
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise ValueError(f"{name}[{index}] is {shown(entry)}; it must be a text")
    return tuple(entries)

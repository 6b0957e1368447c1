"""Blender properties built from the reconstruction settings' specs: the same default, limits and help text."""

from __future__ import annotations

from bpy.props import EnumProperty, IntProperty, IntVectorProperty

from .core.limits import MAX_MODEL_SIDE
from .core.settings import CHOICE, INTEGER, SIZE, default_of, spec_of

# Blender's IntProperty holds a signed 32-bit integer: larger limits (seeds, point counts) stop there.
MAX_BLENDER_INT = 2**31 - 1


def description(name: str) -> str:
    """The setting's help as a Blender tooltip (capitalised), saying what 0 stands for where None does."""
    spec = spec_of(name)
    text = spec.help[0].upper() + spec.help[1:]
    if spec.none_means:
        zero = "0, 0" if spec.kind == SIZE else "0"
        text += f" ({zero}: {spec.none_means})"
    return text


def setting_property(name: str, first_items: tuple = (), **blender_only):
    """The property of the ReconstructionSettings field `name`.

    A setting that may be None is 0 (or (0, 0)) in Blender, which has no None. first_items: enum items put
    before the setting's choices (the first of them is then the default). blender_only: options the settings
    do not have (soft_max, options).
    """
    spec, default = spec_of(name), default_of(name)
    if spec.kind == CHOICE:
        items = first_items + tuple(
            (choice.name, choice.label, choice.description) for choice in spec.choices
        )
        return EnumProperty(
            name=spec.label,
            description=description(name),
            items=items,
            default=items[0][0] if first_items else default,
            **blender_only,
        )
    if spec.kind == SIZE:
        return IntVectorProperty(
            name=spec.label,
            description=description(name),
            size=2,
            default=default or (0, 0),
            min=0,
            max=MAX_MODEL_SIDE,
            **blender_only,
        )
    if spec.kind != INTEGER:
        raise ValueError(f"No Blender property is built for the {spec.kind} setting {name!r}.")
    return IntProperty(
        name=spec.label,
        description=description(name),
        default=default or 0,
        min=0 if spec.none_means else int(spec.low),
        max=min(int(spec.high), MAX_BLENDER_INT),
        **blender_only,
    )

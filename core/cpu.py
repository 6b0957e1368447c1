"""OpenMP defaults for torch on the CPU, applied before torch starts its OpenMP runtime."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# OpenMP's default active wait makes idle torch threads spin. When another process holds a core
# (Blender's UI, a second job), a tiny-model window on 2 threads took 64 s instead of 3.2 s on one
# thread; with passive waiting it took 3.4 s. A value the user already set is kept.
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply_openmp_defaults(environment: MutableMapping[str, str] = os.environ) -> None:
    """Set the OpenMP defaults in `environment` (this process's by default) where they are unset.

    It only takes effect in a process that has not imported torch yet.
    """
    for name, value in OPENMP_DEFAULTS.items():
        environment.setdefault(name, value)

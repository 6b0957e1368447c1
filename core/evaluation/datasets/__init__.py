"""Benchmark dataset readers by name (Sintel, Bonn, KITTI, TUM, ScanNet) with their protocol subsets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...errors import Geo4DError
from . import bonn, kitti, scannet, sintel, tum
from .sequence import BenchmarkSequence, DatasetSpec

DATASETS: dict[str, DatasetSpec] = {
    module.SPEC.name: module.SPEC for module in (sintel, bonn, kitti, tum, scannet)
}

__all__ = ["DATASETS", "BenchmarkSequence", "DatasetSpec", "get_dataset", "load_benchmark"]


def get_dataset(name: str) -> DatasetSpec:
    """The dataset called `name` (case-insensitive); an unknown name lists the known ones."""
    spec = DATASETS.get(name.lower())
    if spec is None:
        raise Geo4DError(f"Unknown dataset '{name}'. Known datasets: {', '.join(DATASETS)}.")
    return spec


def load_benchmark(
    name: str, root: str | Path, task: str | None = None, sequences: Sequence[str] | None = None
) -> list[BenchmarkSequence]:
    """The sequences of dataset `name` under `root` for `task` ("depth" or "pose"; default the first the
    dataset is benchmarked on): the protocol's sequences and frames, or only the named `sequences`.

    File lists, poses and intrinsics are read and checked now; frames and depth are decoded on demand.
    """
    spec = get_dataset(name)
    task = spec.tasks[0] if task is None else task
    if task not in spec.tasks:
        raise Geo4DError(f"The {spec.title} benchmark has no '{task}' task; it has: {', '.join(spec.tasks)}.")
    return spec.read(Path(root), task, sequences)

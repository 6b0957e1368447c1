"""The dataset registry: names, protocol settings per dataset, and the sequence/spec validation."""

from pathlib import Path

import numpy as np
import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.evaluation.datasets import (
    DATASETS,
    BenchmarkSequence,
    DatasetSpec,
    get_dataset,
    load_benchmark,
)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(
        Geo4DError, match="Unknown dataset 'nyu'. Known datasets: sintel, bonn, kitti, tum, scannet"
    ):
        get_dataset("nyu")
    assert get_dataset("Sintel") is DATASETS["sintel"]


def test_protocol_settings_follow_the_design():
    settings = {name: (spec.input_size, spec.max_depth, spec.tasks) for name, spec in DATASETS.items()}
    assert settings == {
        "sintel": ((576, 256), 70.0, ("depth", "pose")),
        "bonn": ((512, 384), 70.0, ("depth",)),
        "kitti": ((640, 192), None, ("depth",)),
        "tum": ((512, 384), None, ("pose",)),
        "scannet": ((512, 384), None, ("pose",)),
    }


def test_unknown_task_and_missing_root_are_reported(tmp_path):
    with pytest.raises(Geo4DError, match="The KITTI depth benchmark has no 'pose' task; it has: depth"):
        load_benchmark("kitti", tmp_path, task="pose")
    with pytest.raises(Geo4DError, match=r"Expected the exported ScanNet scenes .* in the folder .*nowhere"):
        load_benchmark("scannet", tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tasks": ("flow",)}, "tasks"),
        ({"input_size": (500, 384)}, "multiples of 64"),
        ({"fps": 0.0}, "fps"),
        ({"max_depth": -1.0}, "max_depth"),
    ],
)
def test_dataset_spec_validates_its_values(change, message):
    values = {
        "name": "x",
        "title": "X",
        "tasks": ("depth",),
        "input_size": (512, 320),
        "fps": 24.0,
        "max_depth": None,
    }
    with pytest.raises(ValueError, match=message):
        DatasetSpec(**{**values, **change}, read=lambda root, task, names: [])


def test_sequence_checks_that_its_arrays_describe_its_frames():
    values = {
        "dataset": "x",
        "name": "s",
        "frame_files": (Path("a.png"), Path("b.png")),
        "depth_files": None,
        "depth_reader": None,
        "camera_to_world": np.tile(np.eye(4), (2, 1, 1)),
        "intrinsics": None,
        "frame_indices": np.arange(2),
        "fps": 24.0,
        "input_size": (512, 320),
        "max_depth": None,
    }
    sequence = BenchmarkSequence(**values)
    assert sequence.pose_valid.all() and not sequence.has_depth
    with pytest.raises(Geo4DError, match="has no ground-truth depth"):
        sequence.read_depth()
    with pytest.raises(ValueError, match=r"camera_to_world has shape \(3, 4, 4\); expected \(2, 4, 4\)"):
        BenchmarkSequence(**{**values, "camera_to_world": np.tile(np.eye(4), (3, 1, 1))})

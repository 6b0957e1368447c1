"""`python -m geo4d eval` end to end on a tiny Sintel-format dataset with the tiny model: the report's figures
and tables, a rerun that resumes from the cached results, and bad input."""

import json

import numpy as np
import pytest

from geo4d.__main__ import COMMANDS
from geo4d.core.cli import main
from geo4d.core.commands import eval as eval_command
from geo4d.core.evaluation.protocol import truth_depth_at_result
from geo4d.core.result import JSON_NAME, Reconstruction

FRAMES = 6
NAMES = ("alley_2", "ambush_4")


@pytest.fixture
def dataset(tmp_path, write_synthetic_sintel):
    """Two 6-frame synthetic sequences at 96x64 in MPI-Sintel's layout."""
    root = tmp_path / "sintel"
    for seed, name in enumerate(NAMES):
        write_synthetic_sintel(root, name, FRAMES, 96, 64, seed)
    return root


def run_eval(root, output, model, *options):
    which = ["--model", model] if model == "tiny" else ["--checkpoint", model]
    argv = ["eval", "--dataset", "sintel", "--root", str(root), "-o", str(output), *which]
    return main([eval_command], [*argv, "--sequences", *NAMES, "--size", "64x64", "--steps", "1", *options])


def test_eval_reports_the_protocol_and_a_rerun_resumes(dataset, tmp_path, tiny_model, capsys):
    assert eval_command in COMMANDS
    report = tmp_path / "report"
    assert run_eval(dataset, report, tiny_model, "--task", "depth") == 0
    results = json.loads((report / "results.json").read_text())
    assert (results["dataset"], results["task"], results["max_depth"]) == ("sintel", "depth", 70.0)
    assert results["published"] == {"abs_rel": 0.205, "delta_1_25": 0.735}
    rows = results["sequences"]
    assert [row["name"] for row in rows] == list(NAMES) and all(row["frames"] == FRAMES for row in rows)
    for row in rows:
        result = Reconstruction.load(report / "sequences" / row["name"])
        assert (result.num_frames, result.width, result.height) == (FRAMES, 64, 64)
        _, valid = truth_depth_at_result_of(dataset, row["name"], result)
        assert row["pixels"] == valid.sum() and 0 <= row["abs_rel"] < 10 and 0 <= row["delta_1_25"] <= 1
    average = results["average"]
    assert average["pixels"] == sum(row["pixels"] for row in rows)
    weighted = sum(row["abs_rel"] * row["pixels"] for row in rows) / average["pixels"]
    assert average["abs_rel"] == pytest.approx(weighted)
    markdown = (report / "results.md").read_text()
    assert "| Geo4D (paper) | 0.205 | 73.5 % |" in markdown
    assert f"| This run | {average['abs_rel']:.3f} | {100 * average['delta_1_25']:.1f} % |" in markdown
    assert f"| alley_2 | {FRAMES} | {rows[0]['abs_rel']:.3f} |" in markdown
    assert markdown in capsys.readouterr().out

    cached = {name: (report / "sequences" / name / JSON_NAME).stat().st_mtime_ns for name in NAMES}
    assert run_eval(dataset, report, tiny_model, "--task", "pose") == 0  # same results, pose figures
    assert {name: (report / "sequences" / name / JSON_NAME).stat().st_mtime_ns for name in NAMES} == cached
    pose = json.loads((report / "results.json").read_text())
    assert pose["task"] == "pose" and pose["published"]["ate"] == 0.185
    assert all(row["frames_with_pose"] == FRAMES and np.isfinite(row["ate"]) for row in pose["sequences"])
    assert pose["average"]["ate"] == pytest.approx(np.mean([row["ate"] for row in pose["sequences"]]))
    assert "| Geo4D (paper) | 0.185 | 0.063 | 0.547° |" in (report / "results.md").read_text()

    assert run_eval(dataset, report, tiny_model, "--limit", "1") == 0
    assert [row["name"] for row in json.loads((report / "results.json").read_text())["sequences"]] == [
        "alley_2"
    ]
    capsys.readouterr()
    assert run_eval(dataset, report, tiny_model, "--seed", "7") == 1  # other settings: no silent mix
    assert "was reconstructed with" in capsys.readouterr().err


def truth_depth_at_result_of(root, name, result):
    from geo4d.core.evaluation.datasets import load_benchmark

    (sequence,) = load_benchmark("sintel", root, "depth", [name])
    return truth_depth_at_result(sequence, result)


def test_unknown_dataset_and_missing_root_are_reported(tmp_path, capsys):
    argv = ["eval", "--root", str(tmp_path / "nowhere"), "-o", str(tmp_path / "report")]
    assert main([eval_command], [*argv, "--dataset", "sintlel"]) == 1
    assert (
        "Unknown dataset 'sintlel'. Known datasets: sintel, bonn, kitti, tum, scannet"
        in capsys.readouterr().err
    )
    assert main([eval_command], [*argv, "--dataset", "sintel"]) == 1
    error = capsys.readouterr().err
    assert f"in the folder {tmp_path / 'nowhere' / 'training' / 'final'}, but it does not exist" in error
    assert not (tmp_path / "report").exists()

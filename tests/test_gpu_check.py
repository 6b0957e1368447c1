"""benchmarks/gpu_check.sh --dry-run: every part of the GPU check runs on the CPU at tiny size and its one
JSON report holds the figures the GPU run will fill in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("gpu_check") / "report.json"
    completed = subprocess.run(
        [str(SCRIPT), "--dry-run", "--output", str(output)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(output.read_text())


def test_dry_run_report_has_every_part(report):
    assert report["dry_run"] is True and report["device"] == "cpu" and report["errors"] == {}
    assert (report["preset"], report["size"], report["dtype"]) == ("tiny", [128, 64], "float32")
    tests = report["gpu_tests"]
    assert tests["returncode"] == 0 and tests["failures"] == tests["errors"] == 0
    assert "tests/core/network/test_window_pipeline.py" in tests["files"] and tests["tests"] >= 2
    if not torch.cuda.is_available():
        assert tests["skipped"] == tests["tests"]


def test_dry_run_times_each_window_batch(report):
    runs = report["network"]["runs"]
    assert [run["window_batch"] for run in runs] == [1, 2]
    for run in runs:
        assert run["windows"] == 2 and run["frames"] == 20 and run["window_batch_used"] == run["window_batch"]
        assert run["s_per_window"] > 0 and run["peak_memory_gb"] > 0
        assert run["s_per_frame"] == pytest.approx(run["s_per_window"] / 4, abs=1e-4)


def test_dry_run_roofline_aligner_and_reconstruction(report):
    roofline = report["roofline"]
    assert roofline["flops_per_frame"] > 1e9 and roofline["bytes_per_frame"] > 0
    assert set(roofline["roofline_s_per_frame"]) == {"H100 SXM", "H200"}
    assert roofline["chip"] is None and roofline["efficiency"] is None  # no H100/H200 on the CPU
    assert roofline["measured_s_per_frame"] == min(run["s_per_frame"] for run in report["network"]["runs"])
    assert report["aligner"]["cpu_s"] > 0 and report["aligner"]["frames"] == 24
    built = report["reconstruction"]
    assert built["frames"] == 24 and built["windows"] == 3 and built["finite"] is True
    assert {"decode_s", "predict_s", "align_s", "total_s"} <= set(built["timings"])

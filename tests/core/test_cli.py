"""The command line's OpenMP defaults: passive waiting for commands that share the CPU, none for training."""

from __future__ import annotations

import os

from geo4d.__main__ import COMMANDS
from geo4d.core.cli import main


def test_commands_that_share_the_cpu_get_passive_waiting(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(COMMANDS, ["reconstruct", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "out")]) == 1
    assert "missing.mp4" in capsys.readouterr().err
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_training_keeps_the_openmp_defaults(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(COMMANDS, ["train", "-o", str(tmp_path / "run"), "--threads", "0"]) == 1
    assert "--threads 0" in capsys.readouterr().err
    assert "OMP_WAIT_POLICY" not in os.environ

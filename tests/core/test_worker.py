"""The worker process and its client, as the modal operator uses them: spawn, progress events, cancel, death."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from geo4d.core.result import Reconstruction
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic
from geo4d.core.worker.parent import WorkerProcess, describe_check, run_worker_job, worker_launch

FRAMES = 20


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip") / "clip"
    write_synthetic(folder, SceneConfig(frames=FRAMES, width=64, height=40, seed=5))
    return folder / VIDEO_NAME


def reconstruct_job(video: Path, output: Path, model: str, **settings) -> dict:
    return {
        "kind": "reconstruct",
        "video": str(video),
        "output": str(output),
        "model": model,
        "settings": {"steps": 1, "size": [64, 64], **settings},
    }


def collect(worker: WorkerProcess, until=lambda event: False, timeout: float = 300.0) -> list[dict]:
    """Poll like the modal operator's timer until the worker finishes or `until(event)` holds."""
    events, deadline = [], time.monotonic() + timeout
    while not worker.status.finished and time.monotonic() < deadline:
        arrived = worker.poll()
        events += arrived
        if any(until(event) for event in arrived):
            break
        time.sleep(0.02)
    return events


def test_reconstruct_job_streams_progress_then_writes_the_result(video, tmp_path, tiny_model):
    output = tmp_path / "result"
    worker = WorkerProcess(reconstruct_job(video, output, tiny_model, start=2, end=18)).start()
    events = collect(worker)
    assert worker.status.state == "done", worker.status.error
    assert events[0]["type"] == "started" and events[-1]["type"] == "done"
    stages = [event["stage"] for event in events if event["type"] == "progress"]
    assert {"load", "decode", "predict", "align", "save"} <= set(stages)
    assert stages.index("decode") < stages.index("predict") < stages.index("align") < stages.index("save")
    predict = [event for event in events if event.get("stage") == "predict"]
    assert predict[-1]["done"] == predict[-1]["total"] >= 1
    result = Reconstruction.load(output)
    assert result.source_frames.tolist() == list(range(2, 18))
    summary = worker.status.result["summary"]
    assert worker.status.result["output"] == str(output)
    assert summary["frames"] == 16 and summary["source_frames"] == [2, 17]
    assert summary["focal_px"] == pytest.approx(result.intrinsics.fx)
    assert worker.process is None  # reaped, pipes closed


def test_cancel_midway_stops_the_worker_and_writes_nothing(video, tmp_path, tiny_model):
    output = tmp_path / "result"
    worker = WorkerProcess(reconstruct_job(video, output, tiny_model, stride=1)).start()
    collect(worker, until=lambda event: event.get("stage") == "predict")
    assert worker.status.state == "running"
    pid = worker.process.pid
    cancelled_at = time.monotonic()
    worker.cancel()
    collect(worker, timeout=10.0)
    assert worker.status.state == "cancelled"
    assert time.monotonic() - cancelled_at < 3.0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_worker_that_dies_is_reported_with_its_cause(video, tmp_path, tiny_model):
    worker = WorkerProcess(reconstruct_job(video, tmp_path / "result", tiny_model)).start()
    collect(worker, until=lambda event: event["type"] == "started")
    os.kill(worker.process.pid, signal.SIGKILL)
    collect(worker, timeout=10.0)
    assert worker.status.state == "error"
    assert "was killed by signal 9 without a result" in worker.status.error
    assert not (tmp_path / "result").exists()


def test_errors_of_the_job_come_back_as_messages(video, tmp_path):
    missing = run_worker_job(reconstruct_job(video, tmp_path / "a", str(tmp_path / "model.safetensors")))
    assert missing.state == "error" and "Checkpoint not found" in missing.error
    invalid = run_worker_job(reconstruct_job(video, tmp_path / "b", "tiny", stride=0))
    assert (
        invalid.state == "error"
        and "Invalid reconstruction settings" in invalid.error
        and "stride" in invalid.error
    )
    unknown = run_worker_job({"kind": "paint"})
    assert unknown.state == "error" and "Unknown worker job kind 'paint'" in unknown.error
    assert not list(tmp_path.iterdir())


def test_stdout_carries_only_events_even_when_the_job_prints():
    command, environment = worker_launch()
    completed = subprocess.run(
        command, input="not json\n", capture_output=True, text=True, env=environment, timeout=60
    )
    assert completed.returncode == 2
    (line,) = completed.stdout.splitlines()
    assert json.loads(line) == {
        "type": "error",
        "message": "The worker's first input line is not a JSON job: 'not json\\n'.",
    }


def test_check_job_reports_torch_and_the_device_in_plain_words(tiny_model):
    status = run_worker_job({"kind": "check", "model": tiny_model, "device": "cpu"}, timeout=120)
    assert status.state == "done", status.error
    report = status.result["report"]
    assert report["torch"] and report["model_parameters"] > 1000
    lines = describe_check(report)
    assert lines[1].startswith(f"torch {report['torch']}")
    assert any(line.startswith(f"Model {tiny_model} loads:") for line in lines)
    if not report["cuda_available"]:
        assert "No usable CUDA GPU" in lines[2]


def test_closing_stdin_cancels_the_job(video, tmp_path, tiny_model):
    """A parent that goes away (Blender quits) closes the pipe: the worker stops by itself."""
    worker = WorkerProcess(reconstruct_job(video, tmp_path / "result", tiny_model, stride=1)).start()
    collect(worker, until=lambda event: event.get("stage") == "decode")
    worker.process.stdin.close()
    collect(worker, timeout=10.0)
    assert worker.status.state == "cancelled"
    assert not (tmp_path / "result").exists()


def test_workers_start_with_passive_openmp_waiting_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert worker_launch()[1]["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert worker_launch()[1]["OMP_WAIT_POLICY"] == "ACTIVE"

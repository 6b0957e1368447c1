"""Windows and shots on a local Ray cluster (2 CPUs, 2 actors, model tiny): the local run's result, a killed
actor's windows retried, a failing shot among good ones, cancel, and a clear message when Ray is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from geo4d.core.commands.batch import summary_table
from geo4d.core.errors import Cancelled, Geo4DError
from geo4d.core.reconstruction import reconstruct
from geo4d.core.result import Reconstruction
from geo4d.core.settings import ReconstructionSettings
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic
from geo4d.core.worker.parent import WorkerProcess
from geo4d.core.worker.protocol import ReconstructJob

ray = pytest.importorskip("ray")

from geo4d.core.distributed.driver import RayJob  # noqa: E402
from geo4d.core.distributed.shots import Shot, list_shots  # noqa: E402

# 20 frames at stride 4: two 16-frame windows per shot; 64x64 and one DDIM step keep a window at seconds.
FAST = ReconstructionSettings(steps=1, size=(64, 64), max_points_per_frame=200)


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module: 2 CPUs, so 2 one-CPU actors."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        object_store_memory=80 * 2**20,  # a few 64x64 clips; Ray's default takes 30 % of the memory
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("shots")
    config = SceneConfig(frames=20, width=96, height=64, seed=31)
    return [
        write_synthetic(root / f"shot{seed}", replace(config, seed=seed)) / VIDEO_NAME for seed in (31, 32)
    ]


@pytest.fixture(scope="module")
def local_result(clips) -> Reconstruction:
    """The local run on one thread, as each one-CPU actor computes: the same arithmetic, so the same result
    (with other thread counts the sums round differently and depth moves by about 0.1 %)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return reconstruct(clips[0], "tiny", FAST)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch_run(cluster, clips, tmp_path_factory):
    """Two good shots and a corrupt one; the busiest actor is killed as soon as the first window is in."""
    root = tmp_path_factory.mktemp("batch")
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a movie" * 50)
    shots = [
        Shot("good_a", clips[0], root / "out" / "good_a"),
        Shot("corrupt", corrupt, root / "out" / "corrupt"),
        Shot("good_b", clips[1], root / "out" / "good_b"),
    ]
    killed = []

    def kill_busiest_actor(event) -> None:
        if event.stage == "batch" and event.done >= 1 and not killed:
            busiest = max(job.actors, key=job.calls.get)
            killed.append(job.calls[busiest])
            ray.kill(busiest)

    job = RayJob(cluster, "tiny", FAST, actors=2, progress=kill_busiest_actor)
    return job, job.run(shots), killed


def test_the_worker_as_ray_driver_gives_the_local_result_and_its_stages(
    cluster, clips, local_result, tmp_path
):
    """The add-on's path: a worker job with a Ray address joins the running cluster and becomes its driver."""
    job = ReconstructJob(str(clips[0]), str(tmp_path / "result"), "tiny", FAST, ray="auto", ray_actors=2)
    worker = WorkerProcess(job.to_json()).start()
    stages = []
    deadline = time.monotonic() + 600
    while not worker.status.finished and time.monotonic() < deadline:
        stages += [event["stage"] for event in worker.poll() if event["type"] == "progress"]
        time.sleep(0.1)
    assert worker.status.state == "done", worker.status.error or worker.stderr_tail()
    assert list(dict.fromkeys(stages)) == ["load", "decode", "predict", "align", "save"]
    result = Reconstruction.load(worker.status.result["output"])
    np.testing.assert_allclose(result.camera_to_world, local_result.camera_to_world, atol=1e-5)
    np.testing.assert_allclose(result.depth, local_result.depth, rtol=1e-5, atol=1e-5)
    assert result.intrinsics.fx == pytest.approx(local_result.intrinsics.fx, rel=1e-6)
    assert result.settings["windows"] == local_result.settings["windows"] == 2
    assert result.settings["ray_actors"] == 2
    assert worker.status.result["summary"]["frames"] == 20


def test_a_killed_actors_windows_are_retried_on_another(batch_run, local_result):
    job, outcomes, killed = batch_run
    assert killed and killed[0] >= 1, "the killed actor had windows in flight"
    assert job.retried_windows >= 1
    assert len(job.actors) == 1
    good_a = Reconstruction.load(outcomes[0].folder)
    np.testing.assert_allclose(good_a.camera_to_world, local_result.camera_to_world, atol=1e-5)


def test_a_failing_shot_does_not_stop_the_others(batch_run):
    _, outcomes, _ = batch_run
    assert [outcome.shot.name for outcome in outcomes] == ["good_a", "corrupt", "good_b"]
    assert outcomes[0].failure is None and outcomes[2].failure is None
    assert outcomes[2].frames == 20 and outcomes[2].focal_px > 0
    assert "corrupt.mp4" in outcomes[1].failure
    assert outcomes[1].folder is None and not outcomes[1].shot.output.exists()
    table = summary_table(outcomes).splitlines()
    assert table[0].split()[:3] == ["shot", "frames", "focal"]
    assert "FAILED: " in table[2] and str(outcomes[2].folder) in table[3]


def test_cancel_stops_the_job_kills_the_actors_and_writes_nothing(cluster, clips, tmp_path):
    """Cancelled while the actors load their models (minutes for the published one): no shot starts."""
    events = []
    job = RayJob(cluster, "tiny", FAST, actors=2, progress=events.append, cancel=lambda: bool(events))
    with pytest.raises(Cancelled):
        job.run([Shot(clip.parent.name, clip, tmp_path / clip.parent.name) for clip in clips])
    assert [(event.stage, event.done) for event in events] == [("load", 0)]
    assert not any(tmp_path.iterdir())
    for actor in job.created:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.load.remote(), timeout=60)


@pytest.mark.parametrize("command", ["reconstruct", "batch"])
def test_missing_ray_is_one_clear_line(clips, tmp_path, command):
    hide_ray = "import sys; sys.modules['ray'] = None; from geo4d.__main__ import main; sys.exit(main())"
    source = clips[0] if command == "reconstruct" else clips[0].parent
    done = subprocess.run(
        [sys.executable, "-c", hide_ray, command, str(source), "-o", str(tmp_path / "out"), "--ray", "local"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'geo4d[ray]'" in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_shots_from_a_folder_and_a_list_file(clips, tmp_path):
    listing = tmp_path / "shots.txt"
    relative = os.path.relpath(clips[1], tmp_path)
    listing.write_text(f"# the edit\n{clips[0]}\n\n{relative}\n")
    shots = list_shots(listing, tmp_path / "out")
    assert [shot.video for shot in shots] == [clips[0], clips[1].resolve()]
    assert [shot.name for shot in shots] == ["video", "video-2"]
    assert shots[1].output == tmp_path / "out" / "video-2"
    assert [shot.video for shot in list_shots(clips[0].parent, tmp_path / "out")] == [clips[0]]
    with pytest.raises(Geo4DError, match="does not exist"):
        list_shots(tmp_path / "missing", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Geo4DError, match="names no video"):
        list_shots(empty, tmp_path / "out")


@pytest.mark.parametrize(
    ("command", "options", "names"),
    [
        ("reconstruct", ["--ray-actors", "0"], "--ray-actors = 0 is invalid"),
        ("batch", ["--ray-actors", "-2"], "--ray-actors = -2 is invalid"),
        ("batch", ["--stride", "0"], "--stride = 0"),
    ],
)
def test_bad_ray_options_are_refused_before_ray_starts(capsys, clips, tmp_path, command, options, names):
    from geo4d.__main__ import COMMANDS
    from geo4d.core.cli import main

    source = clips[0] if command == "reconstruct" else clips[0].parent
    assert (
        main(COMMANDS, [command, str(source), "-o", str(tmp_path / "out"), "--ray", "local", *options]) == 1
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and names in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_file_as_the_batch_output_is_one_line_and_kept(capsys, clips, tmp_path):
    from geo4d.__main__ import COMMANDS
    from geo4d.core.cli import main

    output = tmp_path / "out"
    output.write_text("a user's file called out")
    assert main(COMMANDS, ["batch", str(clips[0].parent), "-o", str(output), "--ray", "local"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"geo4d: error: -o {output} is a file, not a folder. Choose a folder for the results."
    ]
    assert output.read_text() == "a user's file called out"

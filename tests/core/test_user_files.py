"""Nothing a user owns is ever changed: a tree of user files around and inside the target of every command,
hashed before and after each run, whether the command succeeds or refuses (docs/output-folders.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geo4d.core.errors import Geo4DError
from geo4d.core.result import Reconstruction
from geo4d.core.synthetic.render import VIDEO_NAME, SceneConfig, write_synthetic
from geo4d.core.worker.parent import run_worker_job

CLIP = SceneConfig(frames=8, width=64, height=40, seed=3)
SEQUENCE = "alley_2"


@pytest.fixture
def tree(tmp_path, write_synthetic_sintel) -> Path:
    """A user's working folder: footage with notes and renders, another tool's reconstruction.json, an
    earlier result of ours and one the user added notes to, checkpoints, a dataset and a report of theirs."""
    root = tmp_path / "project"
    earlier = write_synthetic(root / "earlier", CLIP)
    shots = root / "shots"
    shots.mkdir()
    shutil.copyfile(earlier / VIDEO_NAME, shots / "take.mp4")
    (shots / "notes.txt").write_text("take 3 is the good one")
    (shots / "renders").mkdir()
    (shots / "renders" / "0001.png").write_bytes(b"\x89PNG a render")
    (shots / "latest.mp4").symlink_to("take.mp4")
    project = root / "photogrammetry"
    (project / "images").mkdir(parents=True)
    (project / "reconstruction.json").write_text(json.dumps({"cameras": {"1": [0, 0, 1]}, "points": 12}))
    (project / "images" / "0001.jpg").write_bytes(b"\xff\xd8 a photo")
    annotated = write_synthetic(root / "annotated", CLIP)
    (annotated / "notes.txt").write_text("frame 4 drifts")
    (annotated / "renders").mkdir()
    (annotated / "renders" / "beauty.png").write_bytes(b"\x89PNG beauty")
    weights = root / "weights"
    weights.mkdir()
    for name in ("model.ckpt", "vae.ckpt", "mine.safetensors"):
        (weights / name).write_bytes(f"the user's {name}".encode())
    write_synthetic_sintel(root / "sintel", SEQUENCE, 4, 48, 32, 0)
    (root / "report").mkdir()
    (root / "report" / "results.json").write_text(json.dumps({"my": "own numbers"}))
    (tmp_path / "elsewhere").mkdir()
    return root


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, a link's target for a link, '' for a folder."""
    found = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = ""
    return found


def outside(state: dict[str, str], folder: str) -> dict[str, str]:
    return {key: value for key, value in state.items() if key != folder and not key.startswith(folder + "/")}


def geo4d(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "geo4d", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def assert_refused(tree: Path, args: tuple[str, ...], cwd: str, message: str) -> None:
    """The command exits 1 with one clear line matching `message`, and every file under tree is unchanged."""
    before = hashes(tree)
    done = geo4d(*args, cwd=tree / cwd)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("render:")]
    assert done.returncode == 1 and len(lines) == 1, (args, done.stderr)
    assert lines[0].startswith("geo4d: error: ") and message in lines[0], (args, lines[0])
    assert hashes(tree) == before, args


VIDEO_FOLDER = "holds the input shots/take.mp4: Geo4D never writes into, replaces or deletes"
CURRENT = "is the current folder"
FOREIGN_JSON = "its reconstruction.json is not one Geo4D wrote"
ANNOTATED = "it holds files Geo4D did not write (notes.txt, renders/)"


def test_reconstruct_from_the_command_line_refuses_every_folder_it_must_not_touch(tree):
    video = ("reconstruct", "shots/take.mp4")
    cases = [
        ((*video, "-o", "shots"), ".", VIDEO_FOLDER),
        ((*video, "-o", "shots/renders/.."), ".", VIDEO_FOLDER),
        (("reconstruct", "../shots/take.mp4", "-o", "."), "earlier", CURRENT),
        (("reconstruct", "../shots/take.mp4", "-o", ".."), "earlier", "holds the current folder"),
        (("reconstruct", "../project/shots/take.mp4", "-o", "../project"), "../elsewhere", "holds the input"),
        ((*video, "-o", "photogrammetry"), ".", FOREIGN_JSON),
        ((*video, "-o", "annotated"), ".", ANNOTATED),
        ((*video, "-o", "shots/latest.mp4"), ".", "is the input shots/take.mp4"),
        (
            (*video, "-o", "weights", "--checkpoint", "weights/model.ckpt"),
            ".",
            "holds the input weights/model.ckpt",
        ),
    ]
    for args, cwd, message in cases:
        assert_refused(tree, args, cwd, message)


def test_synth_demo_train_and_convert_refuse_folders_and_files_they_did_not_write(tree):
    for command in ("synth", "demo", "train"):
        assert_refused(tree, (command, "-o", "shots"), ".", "it holds files Geo4D did not write (")
        assert_refused(tree, (command, "-o", "."), "annotated", CURRENT)
        assert_refused(tree, (command, "-o", "photogrammetry"), ".", "photogrammetry is not an earlier Geo4D")
    assert_refused(tree, ("synth", "-o", "annotated"), ".", ANNOTATED)
    convert = ("convert-checkpoint", "weights/model.ckpt", "weights/vae.ckpt", "-o")
    assert_refused(tree, (*convert, "weights/mine.safetensors"), ".", "is not a network file Geo4D wrote")


def test_eval_and_metrics_leave_every_user_file_alone(tree, monkeypatch):
    from geo4d.core.evaluation.protocol import evaluate

    evaluate_into = ("eval", "--dataset", "sintel", "--root", "sintel", "--sequences", SEQUENCE, "-o")
    assert_refused(
        tree, (*evaluate_into, "report"), ".", "results.json exists and is not a report Geo4D wrote"
    )
    (tree / "report" / "results.json").unlink()
    (tree / "report" / "sequences" / SEQUENCE).mkdir(parents=True)
    (tree / "report" / "sequences" / SEQUENCE / "notes.txt").write_text("mine")
    before = hashes(tree)
    monkeypatch.chdir(tree / "sintel")
    for output, message in [
        (tree / "report", "did not write (notes.txt)"),
        (Path("."), CURRENT),
        (tree, "holds the current folder"),
        (tree / "sintel" / "training", f"lies inside the input folder {tree / 'sintel'}"),
        (tree.parent / "elsewhere", None),
    ]:
        with pytest.raises(Geo4DError) as refused:
            evaluate("sintel", tree / "sintel", output, "no model is loaded before the checks")
        assert (message or "Unknown model") in str(refused.value), output
        assert hashes(tree) == before, output
    assert_refused(tree, ("metrics", "photogrammetry", "earlier"), ".", "photogrammetry")
    done = geo4d("metrics", "earlier", "annotated", cwd=tree)
    assert done.returncode == 0 and "AbsRel" in done.stdout and hashes(tree) == before


def test_synth_replaces_only_an_earlier_result_of_its_own(tree):
    before = hashes(tree)
    done = geo4d("synth", "-o", "earlier", "--frames", "4", "--size", "64x40", "--seed", "9", cwd=tree)
    assert done.returncode == 0, done.stderr
    assert Reconstruction.load(tree / "earlier").num_frames == 4
    after = hashes(tree)
    assert outside(after, "earlier") == outside(before, "earlier")
    assert not [name for name in os.listdir(tree) if name.startswith(".")]  # no staging left


def test_the_worker_job_of_the_blender_operator_refuses_before_loading_the_model(tree):
    before = hashes(tree)
    job = {"kind": "reconstruct", "video": str(tree / "shots" / "take.mp4"), "output": str(tree / "shots")}
    status = run_worker_job({**job, "model": "tiny", "settings": {"steps": 1}})
    assert status.state == "error" and "holds the input" in status.error
    assert hashes(tree) == before


def test_reconstruct_to_folder_refuses_before_work_and_replaces_only_its_own_result(
    tree, tiny_model, monkeypatch
):
    from geo4d.core.reconstruction import ReconstructionSettings, reconstruct_to_folder

    video = tree / "shots" / "take.mp4"
    settings = ReconstructionSettings(steps=1, size=(64, 64), max_points_per_frame=200)
    monkeypatch.chdir(tree / "earlier")
    before = hashes(tree)
    for target, message in [
        (tree / "shots", VIDEO_FOLDER.replace("shots/take.mp4", str(video))),
        (Path("."), CURRENT),
        (tree, "holds the current folder"),
        (tree / "photogrammetry", FOREIGN_JSON),
        (tree / "annotated", ANNOTATED),
    ]:
        with pytest.raises(Geo4DError) as refused:
            reconstruct_to_folder(video, target, tiny_model, settings)
        assert message in str(refused.value), target
        assert hashes(tree) == before, target
    monkeypatch.chdir(tree.parent / "elsewhere")
    reconstruct_to_folder(video, tree / "earlier", tiny_model, settings)
    assert Reconstruction.load(tree / "earlier").source_video == str(video)
    after = hashes(tree)
    assert outside(after, "earlier") == outside(before, "earlier")
    assert sorted(name for name in after if name.startswith("earlier/") and "/frames/" not in name) == [
        "earlier/depth.npz",
        "earlier/frames",
        "earlier/motion.npz",
        "earlier/reconstruction.json",
    ]


@pytest.mark.slow
def test_reconstruct_from_the_command_line_replaces_an_earlier_result_and_survives_disk_full(tree):
    """The whole run twice (about a minute on two cores): a success over an earlier result, then the same
    run with a file-size limit below depth.npz's size, which must print one line and keep that result."""
    from test_output_folder import run_with_file_size_limit

    args = ("reconstruct", "shots/take.mp4", "-o", "earlier", "--size", "64x64", "--steps", "1")
    before = hashes(tree)
    done = geo4d(*args, cwd=tree)
    assert done.returncode == 0, done.stderr
    assert outside(hashes(tree), "earlier") == outside(before, "earlier")
    replaced = hashes(tree)
    full = run_with_file_size_limit(100_000, *args, "--seed", "5", cwd=tree)
    errors = [line for line in full.stderr.splitlines() if "error" in line.lower() or "Exception" in line]
    assert full.returncode == 1 and errors == [
        "geo4d: error: Cannot write earlier: File too large. Nothing was changed."
    ], full.stderr
    assert "Traceback" not in full.stderr and hashes(tree) == replaced

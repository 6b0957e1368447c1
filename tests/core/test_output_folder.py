"""The output-folder contract: each way a target can be refused, the staged swap and its rollback, disk full."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_result import make_reconstruction

from geo4d.core import output_folder
from geo4d.core.errors import Cancelled, Geo4DError
from geo4d.core.output_folder import (
    RESULT_LAYOUT,
    check_json_report,
    check_output_file,
    check_output_folder,
    check_result_folder,
    foreign_entries,
    write_file,
    write_folder,
    write_json_report,
)
from geo4d.core.result import Reconstruction


def earlier_result(folder: Path, frames: int = 3) -> Path:
    make_reconstruction(frames=frames).save(folder)
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under folder (links as their target), for byte-for-byte comparisons."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = b"link -> " + os.readlink(path).encode()
        elif path.is_file():
            found[name] = path.read_bytes()
        else:
            found[name + "/"] = b""
    return found


def test_a_new_folder_and_an_empty_one_are_written_with_nothing_left_beside(tmp_path):
    earlier_result(tmp_path / "new" / "result")
    (tmp_path / "empty").mkdir()
    earlier_result(tmp_path / "empty")
    assert Reconstruction.load(tmp_path / "new" / "result").num_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["result"]


def test_an_earlier_result_of_ours_is_replaced_by_renames(tmp_path):
    earlier_result(tmp_path / "result", frames=4)
    earlier_result(tmp_path / "result", frames=2)
    assert Reconstruction.load(tmp_path / "result").num_frames == 2
    assert sorted(os.listdir(tmp_path / "result" / "frames")) == ["000000.ply", "000001.ply"]
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


def test_another_tools_reconstruction_json_is_never_replaced(tmp_path):
    project = tmp_path / "photogrammetry"
    project.mkdir()
    (project / "reconstruction.json").write_text(json.dumps({"cameras": [], "points": 3}))
    (project / "images").mkdir()
    (project / "images" / "0001.jpg").write_bytes(b"jpeg")
    before = contents(project)
    with pytest.raises(Geo4DError, match=r"its reconstruction.json is not one Geo4D wrote.*images/"):
        earlier_result(project)
    assert contents(project) == before and sorted(p.name for p in tmp_path.iterdir()) == ["photogrammetry"]


def test_a_wrong_version_or_unparsable_marker_is_not_ours(tmp_path):
    folder = earlier_result(tmp_path / "result")
    description = json.loads((folder / "reconstruction.json").read_text())
    (folder / "reconstruction.json").write_text(json.dumps({**description, "version": 2}))
    assert "version 1" in foreign_entries(folder, RESULT_LAYOUT)[0]
    (folder / "reconstruction.json").write_bytes(b"\xff{")
    assert "cannot be parsed" in foreign_entries(folder, RESULT_LAYOUT)[0]


def test_a_users_files_in_an_earlier_result_refuse_the_run(tmp_path):
    folder = earlier_result(tmp_path / "result")
    (folder / "notes.txt").write_text("the client liked frame 2")
    (folder / "renders").mkdir()
    (folder / "renders" / "0001.png").write_bytes(b"png")
    (folder / "frames" / "000000.ply.bak").write_bytes(b"backup")
    before = contents(folder)
    with pytest.raises(Geo4DError) as refused:
        earlier_result(folder)
    message = str(refused.value)
    assert "holds files Geo4D did not write (frames/000000.ply.bak, notes.txt, renders/)" in message
    assert "move those files elsewhere" in message and "\n" not in message
    assert contents(folder) == before and [p.name for p in tmp_path.iterdir()] == ["result"]


def test_links_are_never_ours(tmp_path):
    folder = earlier_result(tmp_path / "result")
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("precious")
    (folder / "depth.npz").unlink()
    (folder / "depth.npz").symlink_to(elsewhere)
    with pytest.raises(Geo4DError, match=r"depth.npz \(a link\)"):
        earlier_result(folder)
    link = tmp_path / "link"
    link.symlink_to(earlier_result(tmp_path / "real"), target_is_directory=True)
    with pytest.raises(Geo4DError, match="is a symbolic link"):
        earlier_result(link)
    assert elsewhere.read_text() == "precious" and link.resolve() == tmp_path / "real"


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "result").write_text("not a folder")
    with pytest.raises(Geo4DError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "result", RESULT_LAYOUT)


def test_the_current_folder_and_its_parents_are_protected(tmp_path, monkeypatch):
    inside = earlier_result(tmp_path / "result")
    monkeypatch.chdir(inside)
    before = contents(tmp_path)
    with pytest.raises(Geo4DError, match=r"The output folder \. is the current folder"):
        earlier_result(Path("."))
    for target in ("..", str(tmp_path), "frames/.."):
        with pytest.raises(Geo4DError, match="current folder"):
            earlier_result(Path(target))
    assert contents(tmp_path) == before


def test_the_inputs_folders_and_their_parents_are_protected(tmp_path):
    video = tmp_path / "shots" / "day1" / "take.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"video")
    checkpoint = tmp_path / "weights" / "model.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    alias = tmp_path / "alias"
    alias.symlink_to(tmp_path / "shots", target_is_directory=True)
    for target in (video.parent, tmp_path / "shots", alias / "day1", tmp_path / "shots" / "x" / ".."):
        with pytest.raises(Geo4DError, match=r"holds the input .*take.mp4: Geo4D never writes into"):
            check_result_folder(target, video, "tiny")
    with pytest.raises(Geo4DError, match=r"is the input .*take.mp4"):
        check_result_folder(video, video, "tiny")
    with pytest.raises(Geo4DError, match="holds the input .*model.ckpt"):
        check_result_folder(checkpoint.parent, video, f"{checkpoint},{tmp_path / 'vae.ckpt'}")
    link_inside = tmp_path / "linked"
    link_inside.mkdir()
    (link_inside / "take.mp4").symlink_to(video)
    with pytest.raises(Geo4DError, match="holds the input"):
        check_result_folder(link_inside, link_inside / "take.mp4", "tiny")
    with pytest.raises(Geo4DError, match="lies inside the input folder"):  # a dataset, say
        check_output_folder(tmp_path / "shots" / "report", RESULT_LAYOUT, [tmp_path / "shots"])
    check_result_folder(video.parent / "result", video, "tiny")  # a new folder beside the video is fine
    check_result_folder(tmp_path / "tiny", video, "tiny")  # a model name is no file


def test_a_failed_or_cancelled_write_leaves_the_earlier_result_and_no_staging(tmp_path):
    folder = earlier_result(tmp_path / "result")
    before = contents(folder)

    def fail(staging: Path) -> None:
        (staging / "depth.npz").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(
        Geo4DError, match=r"^Cannot write .*result: No space left on device\. Nothing was changed"
    ):
        write_folder(folder, RESULT_LAYOUT, fail)

    def cancel(staging: Path) -> None:
        raise Cancelled()

    with pytest.raises(Cancelled):
        write_folder(folder, RESULT_LAYOUT, cancel)
    assert contents(folder) == before and [p.name for p in tmp_path.iterdir()] == ["result"]


def test_files_a_user_adds_during_the_work_stop_the_swap(tmp_path):
    folder = earlier_result(tmp_path / "result")

    def write_while_the_user_adds_notes(staging: Path) -> None:
        make_reconstruction(frames=1).write_files(staging, 0.0, None)
        (folder / "notes.txt").write_text("added meanwhile")

    with pytest.raises(Geo4DError, match=r"notes.txt"):
        write_folder(folder, RESULT_LAYOUT, write_while_the_user_adds_notes)
    assert (
        Reconstruction.load(folder).num_frames == 3
        and (folder / "notes.txt").read_text() == "added meanwhile"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


def test_a_failed_swap_rolls_the_earlier_result_back(tmp_path, monkeypatch):
    folder = earlier_result(tmp_path / "result")
    before = contents(folder)
    real_rename = os.rename

    def rename(source, destination):
        if str(source).endswith(".staging"):  # moving the new folder in fails (say, a full inode table)
            raise OSError(28, "No space left on device")
        real_rename(source, destination)

    monkeypatch.setattr(output_folder.os, "rename", rename)
    with pytest.raises(Geo4DError, match="No space left on device"):
        earlier_result(folder, frames=1)
    assert contents(folder) == before and [p.name for p in tmp_path.iterdir()] == ["result"]


def test_a_synthetic_clips_video_is_ours_but_a_video_added_to_a_result_is_not(tmp_path):
    from geo4d.core.synthetic.render import SceneConfig, write_synthetic

    clip = write_synthetic(tmp_path / "clip", SceneConfig(frames=2, width=16, height=16))
    write_synthetic(clip, SceneConfig(frames=1, width=16, height=16))
    assert Reconstruction.load(clip).num_frames == 1
    folder = earlier_result(tmp_path / "result")
    (folder / "video.mp4").write_bytes(b"the user's own video")
    with pytest.raises(Geo4DError, match=r"did not write \(video.mp4\)"):
        earlier_result(folder)


def test_single_files_are_replaced_only_when_ours(tmp_path):
    def is_ours(path: Path) -> bool:
        return path.read_bytes().startswith(b"ours")

    target = tmp_path / "weights.safetensors"
    write_file(target, lambda partial: partial.write_bytes(b"ours 1"), is_ours, "network file")
    write_file(target, lambda partial: partial.write_bytes(b"ours 2"), is_ours, "network file")
    assert target.read_bytes() == b"ours 2"
    target.write_bytes(b"someone else's")
    with pytest.raises(Geo4DError, match=r"exists and is not a network file Geo4D wrote"):
        write_file(target, lambda partial: partial.write_bytes(b"ours 3"), is_ours, "network file")
    with pytest.raises(Geo4DError, match=r"is the input"):
        check_output_file(target, is_ours, "network file", [target])
    with pytest.raises(Geo4DError, match=r"is a folder"):
        check_output_file(tmp_path, is_ours, "network file")

    def fail(partial: Path) -> None:
        partial.write_bytes(b"ours, half")
        raise OSError(27, "File too large")

    (tmp_path / "new.safetensors.partial").write_bytes(b"a user's file with a telling name")
    with pytest.raises(Geo4DError, match="File too large"):
        write_file(tmp_path / "new.safetensors", fail, is_ours, "network file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.safetensors.partial", "weights.safetensors"]
    assert target.read_bytes() == b"someone else's"


def test_a_replaced_file_is_kept_as_its_backup_and_a_failure_changes_neither(tmp_path):
    def is_ours(path: Path) -> bool:
        return path.read_bytes().startswith(b"ours")

    target, backup = tmp_path / "scene.blend", tmp_path / "scene.blend1"
    target.write_bytes(b"ours 1")
    backup.write_bytes(b"ours 0")
    write_file(target, lambda partial: partial.write_bytes(b"ours 2"), is_ours, "scene", backup=backup)
    assert (target.read_bytes(), backup.read_bytes()) == (b"ours 2", b"ours 1")

    def fail(partial: Path) -> None:
        partial.write_bytes(b"ours, half")
        raise OSError(28, "No space left on device")

    with pytest.raises(Geo4DError, match="No space left on device. Nothing was changed"):
        write_file(target, fail, is_ours, "scene", backup=backup)
    assert contents(tmp_path) == {"scene.blend": b"ours 2", "scene.blend1": b"ours 1"}
    backup.write_bytes(b"a user's own file")
    with pytest.raises(Geo4DError, match="scene.blend1 exists and is not a scene Geo4D wrote"):
        write_file(target, lambda partial: partial.write_bytes(b"ours 3"), is_ours, "scene", backup=backup)
    assert contents(tmp_path) == {"scene.blend": b"ours 2", "scene.blend1": b"a user's own file"}


def test_json_reports_are_replaced_only_when_they_carry_the_writers_format(tmp_path):
    report = tmp_path / "report.json"
    for run in (1, 2):
        write_json_report(report, {"format": "geo4d-check", "run": run}, "check report")
    assert json.loads(report.read_text()) == {"format": "geo4d-check", "run": 2}
    check_json_report(report, "geo4d-check", "check report")
    for foreign in ('{"run": 3}', '{"format": "another-tool"}', "[1, 2]", "not json"):
        report.write_text(foreign)
        with pytest.raises(Geo4DError, match=r"report.json exists and is not a check report Geo4D wrote"):
            check_json_report(report, "geo4d-check", "check report")
        with pytest.raises(Geo4DError, match=r"report.json exists and is not a check report Geo4D wrote"):
            write_json_report(report, {"format": "geo4d-check"}, "check report")
        assert contents(tmp_path) == {"report.json": foreign.encode()}


DISK_FULL = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.argv = ["geo4d", *sys.argv[2:]]
runpy.run_module("geo4d", run_name="__main__")
"""


def run_with_file_size_limit(limit: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m geo4d ARGS` where no file may grow past `limit` bytes: a real disk-full error (EFBIG)."""
    return subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(limit), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="file size limits are POSIX")
def test_disk_full_while_writing_depth_gives_one_clean_line_and_keeps_the_earlier_result(tmp_path):
    arguments = ("synth", "-o", "clip", "--frames", "8", "--size", "64x40")
    assert run_with_file_size_limit(10**8, *arguments, cwd=tmp_path).returncode == 0
    before = contents(tmp_path)
    # Each frame's PLY and the video stay under 100 kB; depth.npz needs 225 kB.
    done = run_with_file_size_limit(100_000, *arguments, "--seed", "1", cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower() or "Exception" in line]
    assert errors == ["geo4d: error: Cannot write clip: File too large. Nothing was changed."], done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert contents(tmp_path) == before


def test_npz_written_by_the_result_reads_back_with_numpy(tmp_path):
    from geo4d.core.result import write_npz

    arrays = {"depth": np.arange(6, dtype=np.float32).reshape(2, 3), "color": np.ones((2, 3, 3), np.uint8)}
    write_npz(tmp_path / "a.npz", **arrays)
    with np.load(tmp_path / "a.npz") as loaded:
        assert set(loaded.files) == set(arrays)
        for name, array in arrays.items():
            assert np.array_equal(loaded[name], array) and loaded[name].dtype == array.dtype

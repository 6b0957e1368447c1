"""Fuzzing the importer: damaged result folders and bad arguments, each imported by Blender in a subprocess.

Every case (fuzz_cases) gets its own copy of a small valid result with user files around it, damaged as
the case says; the cases run in batches in two subprocesses (fuzz_runner), each a real bpy with the
add-on registered. A case passes when Blender exits with status 0, every import either refuses with one
clear line naming the file or field (and leaves no data-block behind) or builds a scene that reproduces
the files exactly at every frame (also after the .blend is saved and reopened), and every file outside
the result folder, and inside it unless the case damages it after the import, is byte-identical.
A case that damages its result after the import is damaged here once its .blend is saved, and the
.blend is opened by a fresh runner (Blender caches what its Import PLY node read, per process).

A batch that dies (a signal, a non-zero exit) is taken apart: the case it died in runs again alone, the
rest in a new batch, so that a crash is pinned on its case; one that dies after its last case is split in
halves until a case dies alone. A death no case reproduces alone is reported by
test_every_runner_exited_cleanly.
Rerun one case with `-k <its id>`.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fuzz_cases import default_cases, many_cases
from fuzz_damage import RESULT, apply_damage, make_workspace, tree_digest
from synthetic_results import write_result

RUNNER = Path(__file__).with_name("fuzz_runner.py")
# Subprocesses at once: the machines that run the suite have two cores or more.
PARALLEL = 2
# Most cases one runner takes, and the seconds a batch or a single case may take before it counts as hung.
BATCH_SIZE = 150
BATCH_TIMEOUT = 600
CASE_TIMEOUT = 120
DEFAULT_CASES = default_cases()
MANY_CASES = many_cases()


def _number(case: dict) -> str:
    """The unique prefix of a case's id, which names its workspace and .blend."""
    return case["id"].split("-")[0]


class Batches:
    """Prepares the cases' workspaces, runs them in runner subprocesses and collects one outcome per case."""

    def __init__(self, root: Path, base: Path) -> None:
        self.root, self.base = root, base
        self.neutral = root / "cwd"  # the runners' working folder: a relative result path finds nothing
        self.neutral.mkdir(parents=True)
        (root / "blends").mkdir()
        self.outcomes: dict[str, dict] = {}
        # Runners whose death no case reproduces alone: died in a case that passes alone, or after their
        # last case where no half of their cases dies.
        self.unpinned: list[dict] = []
        self.digests: dict[str, dict] = {}
        self.serials = itertools.count()  # names of the runners' files; next() is atomic across threads

    def prepare(self, case: dict) -> dict:
        """A fresh workspace damaged as the case says (before the import), and its digest."""
        workspace = self.root / "cases" / _number(case)
        make_workspace(self.base, workspace)
        if case["when"] == "before":
            for damage in case["damages"]:
                apply_damage(workspace, damage, case["seed"])
        skip = RESULT if case["when"] == "after" else None
        self.digests[case["id"]] = tree_digest(workspace, skip)
        return dict(case, workspace=str(workspace), blend=self._blend(case))

    def _blend(self, case: dict) -> str:
        return str(self.root / "blends" / f"{_number(case)}.blend")

    def run(self, cases: list[dict]) -> None:
        """Every case's outcome: the imports, then the .blend files of cases damaged after the import
        reopened by fresh runners once their results are damaged."""
        self._in_parallel([self.prepare(case) for case in cases], "import")
        saved = []
        for case in cases:
            runs = self.outcomes[case["id"]]["runs"]
            if case["when"] == "after" and runs and "saved" in runs[0]:
                workspace = self.root / "cases" / _number(case)
                for damage in case["damages"]:
                    apply_damage(workspace, damage, case["seed"])
                saved.append(
                    dict(case, workspace=str(workspace), blend=self._blend(case), saved=runs[0]["saved"])
                )
        self._in_parallel(saved, "reopen")

    def _in_parallel(self, cases: list[dict], phase: str) -> None:
        shards = [cases[start::PARALLEL] for start in range(PARALLEL)]
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(self._run_shard, [shard for shard in shards if shard], [phase] * PARALLEL))

    def _run_shard(self, cases: list[dict], phase: str) -> None:
        for start in range(0, len(cases), BATCH_SIZE):
            self._run_batch(cases[start : start + BATCH_SIZE], phase)

    def _again(self, case: dict, phase: str) -> dict:
        """A case ready to run once more: imports need a fresh workspace, reopening only reads."""
        return self.prepare(case) if phase == "import" else case

    def _run_batch(self, cases: list[dict], phase: str) -> None:
        """Run prepared cases in one subprocess; if it dies, the case it died in alone and the cases it
        had not reached in a new batch."""
        while cases:
            runs, returncode, log = self._subprocess(cases, phase)
            done = [case for case in cases if case["id"] in runs]
            for case in done:
                self._record(case, runs[case["id"]], returncode if len(cases) == 1 else 0, log)
            if returncode == 0 or len(cases) == 1:
                for case in cases[len(done) :]:
                    self._record(case, [], returncode or "no outcome", log)
                return
            rest = cases[len(done) :]
            if not rest:  # died after its last case: look for the case in each half
                again = [self._again(case, phase) for case in cases]
                self._run_batch(again[: len(cases) // 2], phase)
                self._run_batch(again[len(cases) // 2 :], phase)
                if all(self.outcomes[case["id"]]["returncode"] == 0 for case in cases):
                    self.unpinned.append(
                        {"cases": [case["id"] for case in cases], "returncode": returncode, "log": log}
                    )
                return
            self._run_batch([self._again(rest[0], phase)], phase)
            if self.outcomes[rest[0]["id"]]["returncode"] == 0:  # memory an earlier case damaged
                self.unpinned.append(
                    {
                        "cases": [case["id"] for case in cases[: len(done) + 1]],
                        "returncode": returncode,
                        "log": log,
                    }
                )
            cases = rest[1:]

    def _record(self, case: dict, runs: list, returncode: int | str, log: str) -> None:
        """A case's outcome; a reopened file's record joins the case's imports (replacing an earlier one)."""
        workspace = self.root / "cases" / _number(case)
        after = tree_digest(workspace, RESULT if case["when"] == "after" else None)
        before = self.digests[case["id"]]
        changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
        if "saved" in case:
            imports = [run for run in self.outcomes[case["id"]]["runs"] if run["mode"] != "REOPENED"]
            runs = imports + runs
        self.outcomes[case["id"]] = {"runs": runs, "returncode": returncode, "log": log, "changed": changed}

    def _subprocess(self, cases: list[dict], phase: str) -> tuple[dict, int, str]:
        """Run prepared cases in a runner; returns their runs by id, the exit status and the log's end."""
        serial = next(self.serials)
        plan, output = self.root / f"plan-{serial}.json", self.root / f"outcomes-{serial}.jsonl"
        plan.write_text(json.dumps({"base": str(self.base), "cases": cases}))
        output.write_text("")
        log_path = self.root / f"log-{serial}.txt"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, str(RUNNER), phase, str(plan), str(output)],
                cwd=self.neutral,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                returncode = process.wait(CASE_TIMEOUT if len(cases) == 1 else BATCH_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                returncode = -signal.SIGKILL
        runs = {}
        for line in output.read_text().splitlines():
            record = json.loads(line)
            if "runs" in record:
                runs[record["id"]] = record["runs"]
        return runs, returncode, log_path.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def base_result(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-base") / "room"
    write_result(folder, 48, 32, frames=4)
    return folder


@pytest.fixture(scope="module")
def batches(request, tmp_path_factory, base_result) -> Batches:
    """Outcomes of every case selected in this session (all of them run once, in batches)."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec") and "case" in item.callspec.params
    ]
    batches = Batches(tmp_path_factory.mktemp("fuzz"), base_result)
    batches.run(selected)
    return batches


def _names_the_fault(message: str, damages: list[dict]) -> bool:
    """One of the damages has every group of its words in the message (Blender's own property
    conversion errors are its wording, not ours)."""
    if message.startswith("Converting py args to operator properties"):
        return True
    lower = message.lower()
    return any(all(any(word.lower() in lower for word in group) for group in d["names"]) for d in damages)


def judge(case: dict, outcome: dict) -> list[str]:
    """What is wrong with a case's outcome; empty when it passed."""
    returncode = outcome["returncode"]
    if returncode != 0:
        died = (
            f"signal {signal.Signals(-returncode).name}"
            if isinstance(returncode, int) and returncode < 0
            else ""
        )
        return [f"Blender exited with {died or returncode}\n{outcome['log']}"]
    faults = [f"files outside the result changed: {outcome['changed']}"] if outcome["changed"] else []
    for run in outcome["runs"]:
        mode, message = run["mode"], run.get("message", "")
        faults += [f"{mode}: {problem}" for problem in run["problems"]]
        if run["outcome"] == "error":
            faults.append(f"{mode}: raised {message}\n{run['traceback']}")
        elif run["outcome"] == "refused":
            if case["when"] == "after":
                faults.append(f"{mode}: refused the undamaged result: {message}")
            elif not message.isprintable() or "Traceback" in message or "invalid literal" in message:
                faults.append(f"{mode}: refused with more than one clear line: {message!r}")
            elif not _names_the_fault(message, case["damages"]):
                faults.append(f"{mode}: refused without naming the file or field at fault: {message!r}")
        elif run["outcome"] == "imported" and case["expect"] == "refuse":
            faults.append(f"{mode}: imported although the damage must be refused")
        elif run["outcome"] not in ("imported", "refused", "opened"):
            faults.append(f"{mode}: {run['outcome']} {message}")
    return faults


def check(case: dict, batches: Batches) -> None:
    faults = judge(case, batches.outcomes[case["id"]])
    assert not faults, f"{case['id']}: {faults[0]}\n" + "\n".join(faults[1:]) + f"\ncase: {json.dumps(case)}"


def case_id(case: dict) -> str:
    return case["id"]


def test_the_default_run_has_enough_cases():
    assert len(DEFAULT_CASES) >= 200 and len(MANY_CASES) >= 2000


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=case_id)
def test_damaged_result(case, batches):
    check(case, batches)


@pytest.mark.slow
@pytest.mark.parametrize("case", MANY_CASES, ids=case_id)
def test_many_damaged_results(case, batches):
    check(case, batches)


@pytest.mark.parametrize("run", ["default", pytest.param("many", marks=pytest.mark.slow)])
def test_every_runner_exited_cleanly(run, batches):
    """A runner that died in a case that passes alone, or after its last case where no half of its cases
    dies alone (memory an earlier import damaged, found later), crashed with no single case to blame."""
    assert not batches.unpinned, "\n".join(
        f"a runner exited with {death['returncode']} in or after cases {death['cases']}\n{death['log']}"
        for death in batches.unpinned
    )

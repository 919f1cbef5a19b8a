"""Faults never become verdicts: an interrupt, an index fault or a flaky pair, through the real CLI.

uv is the fake in tests/unit/fake_uv.py, except where the index fault is served by a local HTTP
server answering 404 to the real, pinned uv.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fakeproject
import pytest

REPO = Path(__file__).parents[2]
MATRIX = fakeproject.matrix((["1.0.0"], ["4.46.3"]), cell_timeout=60)
PAIR = "trl==1.0.0,transformers==4.46.3"
CELL = "trl1.0.0-tf4.46.3"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return fakeproject.make(tmp_path, MATRIX, ["0.12.2", "1.0.0"], ["4.46.3", "5.0.0"])


def environ(project: Path, **env: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COMPAT_UV": str(project / "uv"), "FAKE_CELL_SLEEP": "0", **env}


def matrix(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "compat", "matrix", "--config", str(project / "matrix.toml"),
           "--out", str(project / "out"), "--only", PAIR, *args]
    return subprocess.run(cmd, cwd=REPO, env=environ(project, **env), capture_output=True, text=True, timeout=120)


def cached(project: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((project / ".compat" / "results").glob("*.json"))]


def reported(project: Path) -> dict:
    return {f"trl{c['trl']}-tf{c['transformers']}": c for c in json.loads((project / "out" / "compat.json").read_text())["cells"]}


def test_a_process_group_interrupt_during_uv_sync_caches_no_verdict(project: Path, tmp_path: Path):
    mark = tmp_path / "sync-started"
    cmd = [sys.executable, "-m", "compat", "matrix", "--config", str(project / "matrix.toml"),
           "--out", str(project / "out"), "--only", PAIR]
    proc = subprocess.Popen(cmd, cwd=REPO, env=environ(project, FAKE_SYNC_SLEEP="30", FAKE_SYNC_MARK=str(mark)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C or a CI cancel does: the whole group, uv included
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert cached(project) == []  # nothing about the pair was learnt, so nothing is remembered
    cell = json.loads((project / "out" / "cells" / f"{CELL}.json").read_text())
    assert cell["status"] == "error" and cell["failure"]["fault"] == "interrupt", cell["failure"]
    again = matrix(project)
    assert again.returncode == 0, again.stderr
    assert f"{CELL}: compatible" in again.stderr and "(cached)" not in again.stderr
    assert [c["status"] for c in cached(project)] == ["compatible"]


@pytest.mark.needs("uv")
def test_an_index_answering_404_leaves_a_compatible_cell_compatible(project: Path, not_found_index: str):
    first = matrix(project)
    assert first.returncode == 0, first.stderr
    before = cached(project)
    assert [c["status"] for c in before] == ["compatible"]
    # The real uv now resolves against a mirror that answers 404 to everything.
    env = {k: v for k, v in environ(project).items() if k != "COMPAT_UV"}
    env["PIP_INDEX_URL"] = not_found_index
    cmd = [sys.executable, "-m", "compat", "matrix", "--config", str(project / "matrix.toml"),
           "--out", str(project / "out"), "--only", PAIR]
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 1, second.stderr  # a harness error: rerun later
    assert f"{CELL}: error" in second.stderr
    assert cached(project) == before  # the cached verdict is untouched, no new one is cached
    assert reported(project)[CELL]["status"] == "compatible"  # and the report keeps the measured verdict
    assert json.loads((project / "out" / "cells" / f"{CELL}.json").read_text())["status"] == "compatible"


def test_a_fake_index_fault_is_an_error_too(project: Path):
    assert matrix(project).returncode == 0
    faulty = matrix(project, "--fresh", FAKE_INDEX_404="1")
    assert faulty.returncode == 1, faulty.stderr
    assert reported(project)[CELL]["status"] == "compatible"


def test_a_verdict_that_changes_is_measured_again_and_disagreement_is_flaky(project: Path, tmp_path: Path):
    counter = tmp_path / "runs"
    assert matrix(project, FAKE_FLIP=str(counter)).returncode == 0  # run 1: trains
    assert reported(project)[CELL]["status"] == "compatible"
    flip = matrix(project, "--fresh", FAKE_FLIP=str(counter))  # run 2 fails at train, run 3 trains again
    assert "measuring again" in flip.stderr, flip.stderr
    assert counter.read_text().strip() == "3"
    cell = reported(project)[CELL]
    assert cell["status"] == "flaky"
    assert sorted(o["status"] for o in cell["flaky"]) == ["compatible", "incompatible"]
    assert cached(project) == []  # neither the flaky outcome nor the verdict it contradicted is served again
    again = matrix(project, FAKE_FLIP=str(counter))  # a flaky cell is measured twice before it may leave flaky
    assert again.returncode == 0, again.stderr
    assert counter.read_text().strip() == "5" and reported(project)[CELL]["status"] == "flaky"


def test_merge_of_a_traversing_version_writes_nothing_outside_out(tmp_path: Path):
    src = tmp_path / "shard"
    src.mkdir()
    (src / "compat.json").write_text(json.dumps({"schema_version": 1, "cells": [
        {"trl": "1.0.0", "transformers": "/../../x", "resolution": "latest", "status": "compatible",
         "log": "../../../victim.log"}]}))
    before = sorted(p for p in tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "compat", "merge", str(src), "--out", str(tmp_path / "out")],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "transformers" in proc.stderr and "Traceback" not in proc.stderr
    after = sorted(p for p in tmp_path.rglob("*") if not str(p).startswith(str(tmp_path / "out")))
    assert after == before
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "out" / "cells").exists()


def test_an_interrupted_fresh_rerun_keeps_the_fuller_report(project: Path, tmp_path: Path):
    full = subprocess.run([sys.executable, "-m", "compat", "matrix", "--config", str(project / "matrix.toml"),
                           "--out", str(project / "out"), "--only", PAIR, "--only", "trl==0.12.2,transformers==4.46.3"],
                          cwd=REPO, env=environ(project), capture_output=True, text=True, timeout=120)
    assert full.returncode == 0, full.stderr
    assert len(reported(project)) == 2
    partial = matrix(project, "--fresh")  # one of the two cells only
    assert partial.returncode == 0, partial.stderr
    assert len(reported(project)) == 2 and "kept from the report already there" in partial.stderr


@pytest.mark.parametrize("env,kind", [({"FAKE_SYNC_FAIL": "No space left on device (os error 28)"}, "disk"),
                                      ({"FAKE_PYTEST_EXIT": "3"}, "harness"), ({"FAKE_PYTEST_EXIT": "5"}, "harness")],
                         ids=["disk-full-during-sync", "pytest-internal-error", "pytest-collected-nothing"])
def test_a_machine_or_pytest_fault_is_an_error_and_never_cached(project: Path, env: dict[str, str], kind: str):
    proc = matrix(project, **env)
    assert proc.returncode == 1, proc.stderr  # a harness error: rerun later
    cell = reported(project)[CELL]
    assert cell["status"] == "error" and cell["failure"]["fault"] == kind, cell["failure"]
    assert cached(project) == []
    shutil.rmtree(project / ".compat" / "envs")  # the fake fault lives in the environment's python
    assert matrix(project).returncode == 0 and reported(project)[CELL]["status"] == "compatible"


UV_OFFLINE_MISS = ("error: No solution found when resolving dependencies\n  cause: Because trl was not found in the cache "
                   "and you require trl==1.0.0, we can conclude that your requirements are unsatisfiable.\n\nhint: "
                   "Packages were unavailable because the network was disabled. When the network is disabled, registry "
                   "packages may only be read from the cache.")


@pytest.mark.parametrize("env,kind", [
    ({"FAKE_COMPILE_FAIL": UV_OFFLINE_MISS}, "offline"),
    ({"FAKE_COMPILE_FAIL": "error: Failed to initialize cache at `/c`\n  cause: Permission denied (os error 13)"}, "cache"),
    ({"FAKE_CELL_FAIL": "RuntimeError: could not create a primitive"}, "memory"),
    ({"FAKE_CELL_FAIL": "RuntimeError: [enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"},
     "memory"),
    ({"FAKE_CELL_FAIL": "MemoryError"}, "memory"),
    ({"FAKE_CELL_FAIL": "OSError: [Errno 28] No space left on device"}, "disk"),
], ids=["uv-offline-empty-cache", "uv-cache-unwritable", "onednn-primitive", "cpu-allocator", "memoryerror", "enospc"])
def test_resource_exhaustion_and_machine_state_never_replace_a_measured_verdict(project: Path, env: dict[str, str],
                                                                                kind: str):
    assert matrix(project).returncode == 0
    before = cached(project)
    assert [c["status"] for c in before] == ["compatible"]
    shutil.rmtree(project / ".compat" / "envs")  # the fake's cell fault is written when the environment syncs
    faulty = matrix(project, "--fresh", **env)
    assert faulty.returncode == 1, faulty.stderr
    cell = json.loads((project / "out" / "cells" / f"{CELL}.json").read_text())
    assert cell["status"] == "compatible"  # cells/ mirrors the report: the fault never shows over the verdict
    assert cached(project) == before
    assert reported(project)[CELL]["status"] == "compatible"
    assert f"{CELL}: error" in faulty.stderr
    shutil.rmtree(project / ".compat" / "envs")
    elsewhere = project / "elsewhere"  # a report with no verdict to keep shows the fault and its kind
    alone = subprocess.run([sys.executable, "-m", "compat", "matrix", "--config", str(project / "matrix.toml"),
                            "--out", str(elsewhere), "--only", PAIR, "--fresh"], cwd=REPO,
                           env=environ(project, **env), capture_output=True, text=True, timeout=120)
    assert alone.returncode == 1
    failure = json.loads((elsewhere / "cells" / f"{CELL}.json").read_text())["failure"]
    assert failure["fault"] == kind, failure


def test_uv_variables_that_change_what_uv_sees_are_part_of_the_cache_key(project: Path):
    from compat.harness.envs import uv_visibility

    assert uv_visibility({"UV_OFFLINE": "1", "UV_CACHE_DIR": "/c", "UV_INDEX_URL": "http://x", "PATH": "/bin"}) == \
        ["UV_INDEX_URL=http://x", "UV_OFFLINE=1"]
    assert matrix(project).returncode == 0
    again = matrix(project, UV_EXCLUDE_NEWER="2024-01-01T00:00:00Z")
    assert again.returncode == 0 and "(cached)" not in again.stderr, again.stderr
    assert len(cached(project)) == 2  # one entry per uv configuration
    assert "(cached)" in matrix(project, UV_CACHE_DIR=str(project / "uvc")).stderr  # how uv works: same key


def test_a_cache_entry_whose_pair_differs_from_its_key_is_rerun(project: Path):
    assert matrix(project).returncode == 0
    [entry] = sorted((project / ".compat" / "results").glob("*.json"))
    data = json.loads(entry.read_text())
    data["transformers"] = "5.0.0"
    data["status"] = "incompatible"
    data["failure"] = {"stage": "train", "message": "planted"}
    entry.write_text(json.dumps(data))
    again = matrix(project)
    assert again.returncode == 0 and "(cached)" not in again.stderr, again.stderr
    assert reported(project)[CELL]["status"] == "compatible" and "5.0.0" not in json.dumps(reported(project))


def test_a_cell_that_cannot_be_written_to_cells_is_still_cached(project: Path):
    (project / "out" / "cells" / f"{CELL}.json").mkdir(parents=True)  # writing it fails
    proc = matrix(project)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert [c["status"] for c in cached(project)] == ["compatible"]  # the measured verdict survived


def test_a_cell_log_that_cannot_be_opened_is_an_error_with_reports(project: Path):
    (project / "out" / "logs" / f"{CELL}.log").mkdir(parents=True)
    proc = matrix(project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    cell = reported(project)[CELL]
    assert cell["status"] == "error" and cell["failure"]["fault"] == "harness", cell
    assert cached(project) == []


def test_uv_missing_or_deleted_is_one_line_or_a_tool_fault(project: Path):
    gone = matrix(project, COMPAT_UV=str(project / "no-uv"))
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1 and "cannot run" in gone.stderr, gone.stderr
    assert "no-uv" in gone.stderr and "settings.python" not in gone.stderr
    (project / "plain").write_text("#!/bin/sh\n")
    notexec = matrix(project, COMPAT_UV=str(project / "plain"))
    assert notexec.returncode == 2 and "Permission denied" in notexec.stderr, notexec.stderr
    from compat.harness.envs import Step, _run, fault

    step = _run([str(project / "deleted-mid-run"), "pip", "compile"], 5)
    assert not step.ok and fault(step, {}, False) == "tool"
    assert fault(Step(False, 0.0, "error: Failed to install: No space left on device (os error 28)", 2), {}, False) == "disk"
    # uv's allocator failing under `ulimit -v` aborts it (SIGABRT): memory, not an interrupt
    assert fault(Step(False, 0.0, "memory allocation of 2868068 bytes failed\nstack backtrace:", -6), {}, False) == "memory"


def test_an_unwritable_step_summary_is_a_note_after_the_reports(project: Path):
    (project / "summary").mkdir()  # GITHUB_STEP_SUMMARY names a directory
    proc = matrix(project, GITHUB_STEP_SUMMARY=str(project / "summary"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "GITHUB_STEP_SUMMARY" in proc.stderr and "not appended" in proc.stderr
    assert reported(project)[CELL]["status"] == "compatible"


def test_the_written_line_names_only_the_files_written(project: Path):
    argv = ["matrix", "--config", str(project / "matrix.toml"), "--out", str(project / "out"), "--only", PAIR]
    script = ("import sys; from compat.harness.reports import plot; plot.available = lambda: False; "
              f"from compat.cli.main import main; sys.exit(main({argv!r}))")  # matplotlib missing
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environ(project), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "skipped compat.svg" in proc.stderr
    wrote = next(line for line in proc.stderr.splitlines() if line.startswith("compat: wrote"))
    assert "compat.svg" not in wrote and "compat.json" in wrote


def test_a_deeply_nested_cache_entry_is_rerun_not_a_crash(project: Path):
    assert matrix(project).returncode == 0
    [entry] = sorted((project / ".compat" / "results").glob("*.json"))
    entry.write_text("[" * 100_000 + "]" * 100_000)
    again = matrix(project)
    assert again.returncode == 0 and "Traceback" not in again.stderr and "(cached)" not in again.stderr, again.stderr
    assert [c["status"] for c in cached(project)] == ["compatible"]


def test_sigint_while_the_reports_are_written_lets_the_set_land(project: Path, monkeypatch):
    """Ctrl-C arriving while the reports are rendered: the handlers are still in place, so the set is
    written whole and the run ends as interrupted (130), not with a KeyboardInterrupt traceback."""
    from compat.cli import pipeline
    from compat.cli.main import main

    real_write = pipeline.reports.write

    def interrupted_write(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_write(*args, **kwargs)

    for key, value in environ(project).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(pipeline.reports, "write", interrupted_write)
    code = main(["matrix", "--config", str(project / "matrix.toml"), "--out", str(project / "out"), "--only", PAIR])
    assert code == 130
    assert reported(project)[CELL]["status"] == "compatible"
    assert not [p for p in (project / "out").iterdir() if p.name.endswith(".tmp")]

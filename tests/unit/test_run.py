"""run_all with faked subprocesses: a fake uv (Envs stand-in) and a fake cell python."""

from __future__ import annotations

import io
import json
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from compat.harness import run, suite
from compat.harness.config import Settings
from compat.harness.envs import Step
from compat.harness.plan import Cell

# What the cell suite streams to $COMPAT_CELL_RESULT: one JSON record per line (compat.contract.fold_observations).
OBS = [
    {"set": "environment", "value": {"trl": "0.12.2"}},
    {"probe": "import_path", "value": "trl"},
    {"probe": "keyword.processing_class", "value": "accepted"},
    {"probe": "keyword.tokenizer", "value": "rejected"},
    {"merge": "keyword_raised_by", "sub": "tokenizer", "value": "trl.trainer.kto_trainer.KTOTrainer.__init__"},
    {"set": "training", "value": {"device": "cpu", "dtype": "bfloat16", "steps": 3, "losses": [0.69, 0.7, 0.68]}},
    {"set": "adapter", "value": "pass"},
    {"test": "tests/cell/kto/test_kto.py::test_training", "outcome": "passed", "stage": "train", "message": ""},
    {"exit": 0},
]
OBS_LINES = "\n".join(json.dumps(r) for r in OBS)


def fake_python(env: Path, body: str) -> None:
    exe = env / "bin" / "python"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


@dataclass
class FakeEnvs:
    root: Path
    resolve_outcome: dict[str, Step] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    python_body: str = ""
    installed: dict[str, str] = field(default_factory=dict)  # cell id -> pins of an environment that exists
    resolving: Any = None  # called inside resolve (tests hold it there)

    def resolve(self, cell: Cell, workdir: Path):
        if self.resolving:
            self.resolving()
        self.calls.append(f"resolve {cell.id}")
        workdir.mkdir(parents=True, exist_ok=True)
        lock = workdir / "requirements.txt"
        lock.write_text(cell.only)
        return self.resolve_outcome.get(cell.id, Step(True, 0.1, "")), lock

    def known_pins(self, cell: Cell) -> Path | None:
        if cell.id not in self.installed:
            return None
        pins = self.root / f"{cell.id}.pins"
        pins.parent.mkdir(parents=True, exist_ok=True)
        pins.write_text(self.installed[cell.id])
        return pins

    def ensure(self, cell: Cell, lock: Path):
        self.calls.append(f"ensure {cell.id} {lock.read_text()}")
        env = self.root / cell.id
        fake_python(env, self.python_body or f"cat > \"$COMPAT_CELL_RESULT\" <<'EOF'\n{OBS_LINES}\nEOF\n")
        return Step(True, 0.2, ""), env, False

    def collect(self, keep: int, busy: Path | None = None) -> list[str]:
        self.calls.append(f"collect {busy.name if busy else ''}")
        return []


def ctx(tmp_path: Path, envs: FakeEnvs, timeout: float = 60, **kw) -> run.Context:
    return run.Context(root=tmp_path, out=tmp_path / "out", settings=Settings(cell_timeout=timeout), envs=envs,
                       cache_dir=tmp_path / "cache", suite="s1", **kw)


CELLS = [Cell(Version("0.12.2"), Version("4.46.3")), Cell(Version("1.0.0"), Version("4.45.2"))]


def test_pipeline_statuses_and_cache(tmp_path):
    refusal = "× No solution found when resolving dependencies:\n╰─▶ Because trl==1.0.0 depends on transformers>=4.56"
    envs = FakeEnvs(tmp_path / "envs", {CELLS[1].id: Step(False, 0.3, refusal, returncode=1)})  # uv's exit 1
    results = run.run_all(ctx(tmp_path, envs), CELLS, 2, run.Reporter(2, io.StringIO()))
    assert [r.status for r in results] == ["compatible", "unresolvable"]
    assert results[0].keyword_raised_by["tokenizer"].endswith("KTOTrainer.__init__")
    assert "Because trl==1.0.0 depends on transformers>=4.56" in results[1].failure.message
    assert json.loads((tmp_path / "out" / "cells" / f"{CELLS[0].id}.json").read_text())["status"] == "compatible"
    envs.calls.clear()
    again = run.run_all(ctx(tmp_path, envs), CELLS, 1, run.Reporter(2, io.StringIO()))
    assert envs.calls == [] and again == results  # unchanged matrix: nothing runs


def test_network_fault_is_error_and_not_cached(tmp_path):
    envs = FakeEnvs(tmp_path / "envs", {CELLS[0].id: Step(False, 0.1, "error: Failed to fetch: `http://127.0.0.1:9/simple/trl/`", returncode=2)})
    waits: list[float] = []
    [r] = run.run_all(ctx(tmp_path, envs, sleep=waits.append), CELLS[:1], 1, run.Reporter(1, io.StringIO()))
    assert (r.status, r.failure.stage) == ("error", "resolve")
    assert r.failure.fault == "network" and waits == [2.0, 4.0, 8.0]  # retried with backoff (recorded, not slept)
    assert not any((tmp_path / "cache").glob("*.json"))


def test_hung_cell_is_killed_and_recorded_as_timeout(tmp_path):
    envs = FakeEnvs(tmp_path / "envs", python_body="sleep 30\n")
    [r] = run.run_all(ctx(tmp_path, envs, timeout=1), CELLS[:1], 1, run.Reporter(1, io.StringIO()))
    assert r.failure.stage == "timeout" and r.seconds < 20
    assert (tmp_path / "out" / r.log).exists()


def _wait_for(path: Path, seconds: float = 10) -> bool:
    for _ in range(int(seconds / 0.05)):
        if path.exists():
            return True
        threading.Event().wait(0.05)
    return False


def test_a_warm_cell_runs_its_suite_while_resolving_and_keeps_it_when_the_pins_agree(tmp_path):
    """The environment exists: each side waits for the other to have started, so run one after the
    other (either order) they cannot both see it; the suite's result stands as the pins agree."""
    cell = CELLS[0]
    suite_started, resolve_started = tmp_path / "suite-started", tmp_path / "resolve-started"
    body = (f"touch {suite_started}\n"
            f"for i in $(seq 200); do [ -e {resolve_started} ] && break; sleep 0.05; done\n"
            f"[ -e {resolve_started} ] || touch {tmp_path}/suite-gave-up\n"
            f"cat > \"$COMPAT_CELL_RESULT\" <<'EOF'\n{OBS_LINES}\nEOF\n")
    envs = FakeEnvs(tmp_path / "envs", installed={cell.id: cell.only}, python_body=body)
    seen: list[bool] = []
    envs.resolving = lambda: (resolve_started.touch(), seen.append(_wait_for(suite_started)))
    [r] = run.run_all(ctx(tmp_path, envs), [cell], 1, run.Reporter(1, io.StringIO()))
    assert seen == [True] and not (tmp_path / "suite-gave-up").exists(), "resolve and suite did not overlap"
    assert r.status == "compatible" and "resolve" in r.timings
    assert [c for c in envs.calls if c.startswith("ensure")] == [f"ensure {cell.id} {cell.only}"]


def test_a_stop_during_a_warm_cell_with_new_pins_rebuilds_nothing(tmp_path):
    cell = CELLS[0]
    envs = FakeEnvs(tmp_path / "envs", installed={cell.id: "trl==0.12.1"})
    context = ctx(tmp_path, envs)
    envs.resolving = context.stop.set  # SIGTERM arrives while today's resolution runs
    [r] = run.run_all(context, [cell], 1, run.Reporter(1, io.StringIO()))
    assert (r.status, r.failure.fault) == ("error", "interrupt")
    assert f"ensure {cell.id} {cell.only}" not in envs.calls  # the environment was not synced to the new pins
    assert not any((tmp_path / "cache").glob("*.json"))


def test_a_network_fault_while_resolving_a_warm_cell_is_an_error_whatever_its_suite_said(tmp_path):
    cell = CELLS[0]
    envs = FakeEnvs(tmp_path / "envs", {cell.id: Step(False, 0.1, "error: Failed to fetch: `http://127.0.0.1:9/simple/trl/`",
                                                      returncode=2)}, installed={cell.id: cell.only})
    [r] = run.run_all(ctx(tmp_path, envs, sleep=lambda s: None), [cell], 1, run.Reporter(1, io.StringIO()))
    assert (r.status, r.failure.stage, r.failure.fault) == ("error", "resolve", "network")
    assert not any((tmp_path / "cache").glob("*.json"))


def test_new_pins_rerun_the_suite_in_the_resynced_environment(tmp_path):
    cell = CELLS[0]
    envs = FakeEnvs(tmp_path / "envs", installed={cell.id: "trl==0.12.1"})
    [r] = run.run_all(ctx(tmp_path, envs), [cell], 1, run.Reporter(1, io.StringIO()))
    assert r.status == "compatible"
    assert [c for c in envs.calls if c.startswith("ensure")] == [f"ensure {cell.id} trl==0.12.1", f"ensure {cell.id} {cell.only}"]
    assert "differs from the environment's pins" in (tmp_path / "out" / r.log).read_text()


def test_a_failed_resolution_decides_a_warm_cell_whatever_its_suite_said(tmp_path):
    refusal = "× No solution found when resolving dependencies:\n╰─▶ Because trl==0.12.2 depends on transformers>=4.56"
    cell = CELLS[0]
    envs = FakeEnvs(tmp_path / "envs", {cell.id: Step(False, 0.3, refusal, returncode=1)}, installed={cell.id: cell.only})
    [r] = run.run_all(ctx(tmp_path, envs), [cell], 1, run.Reporter(1, io.StringIO()))
    assert (r.status, r.failure.stage) == ("unresolvable", "resolve")


def test_suite_hash_changes_with_cell_code_not_findings(tmp_path):
    (tmp_path / "tests" / "cell").mkdir(parents=True)
    (tmp_path / "compat").mkdir()
    (tmp_path / "tests" / "cell" / "test_a.py").write_text("x = 1\n")
    h1 = suite.suite_hash(tmp_path)
    (tmp_path / "compat" / "findings.json").write_text("{}")
    assert suite.suite_hash(tmp_path) == h1
    (tmp_path / "tests" / "cell" / "test_a.py").write_text("x = 2\n")
    assert suite.suite_hash(tmp_path) != h1


def test_a_cell_measured_again_runs_alone():
    """The gate: while a cell runs alone no other starts, and it waits for the running ones to end."""
    import threading
    import time as _time

    from compat.harness.run import Gate

    gate, events = Gate(), []
    inside = threading.Event()
    release = threading.Event()

    def neighbour() -> None:
        with gate.shared():
            events.append("neighbour in")
            inside.set()
            release.wait(10)
            events.append("neighbour out")

    def rerun() -> None:
        with gate.alone():
            events.append("alone")

    first = threading.Thread(target=neighbour)
    first.start()
    inside.wait(10)
    solo = threading.Thread(target=rerun)
    solo.start()
    while not gate._waiting:  # the solo run is queued behind the running neighbour
        _time.sleep(0.01)
    late_started = threading.Event()

    def later() -> None:
        with gate.shared():
            events.append("late in")
            late_started.set()

    late = threading.Thread(target=later)
    late.start()
    assert not late_started.wait(0.2)  # a waiting solo run holds new cells back
    release.set()
    for t in (first, solo, late):
        t.join(10)
    assert events == ["neighbour in", "neighbour out", "alone", "late in"]

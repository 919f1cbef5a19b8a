"""`compat bench` arithmetic and output, with every timed step faked (the real bench is not a test)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from packaging.version import Version

from compat.harness import bench
from compat.harness.config import Settings
from compat.harness.envs import EnvError
from compat.harness.plan import Cell

CELL = Cell(Version("0.12.2"), Version("4.46.3"))
SECONDS = {"compile": 0.5, "venv": 0.2, "sync": 2.8, "-m venv": 3.0, "pip install": 87.0, "--fresh": 20.0, "matrix": 0.4}


def fake_runner(log: list[tuple[str, Path | None]]):
    def run(cmd: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> float:
        text = " ".join(cmd)
        log.append((text, cwd))
        if "pip compile" in text:
            Path(cmd[cmd.index("-o") + 1]).write_text("# via uv\ntorch==2.13.0+cpu\ntrl==0.12.2\ntransformers==4.46.3\n")
            return SECONDS["compile"]
        if " compat matrix " in text:
            return SECONDS["--fresh" if "--fresh" in text else "matrix"]
        for key in ("pip install", "-m venv", "sync", "venv"):
            if key in text:
                return SECONDS[key]
        raise AssertionError(f"unexpected command {text}")
    return run


def test_ratios_and_what_each_side_ran(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPAT_UV", "/fake/uv")
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    log: list[tuple[str, Path | None]] = []
    config = tmp_path / "matrix.toml"
    figures = bench.bench(CELL, Settings(), config, [CELL.only], runner=fake_runner(log), python="/usr/bin/python3.11",
                          work=tmp_path / "w")
    assert figures.uv_seconds == pytest.approx(3.0) and figures.pip_seconds == pytest.approx(90.0)
    assert figures.setup_ratio == pytest.approx(30.0)
    assert figures.cold_seconds == 20.0 and figures.cached_seconds == 0.4 and figures.cache_ratio == pytest.approx(0.02)
    commands = [c for c, _ in log]
    assert any(c.startswith("/fake/uv pip sync") and "--find-links /opt/wheels" in c for c in commands)
    pip = next(c for c in commands if "pip install" in c)
    assert "--no-cache-dir" in pip
    assert (tmp_path / "w" / "setup" / "pins.txt").read_text().splitlines()[1] == "torch==2.13.0"  # let pip pick the wheel
    fresh, cached = [c for c in commands if " matrix " in c]
    assert fresh.endswith("--fresh") and "--fresh" not in cached and f"--only {CELL.only}" in cached
    assert all(cwd == tmp_path for c, cwd in log if " matrix " in c)


def test_render_prints_ratios_then_seconds():
    text = bench.Figures("trl==0.12.2,transformers==4.46.3", 3.0, 90.0, 20.0, 0.4, 1, 0.5).render()
    assert text.splitlines() == [
        "bench trl==0.12.2,transformers==4.46.3",
        "(a) env setup, one cell: pip/uv = 30.0x (pip 90.0s, uv 3.0s; the same pins, uv's cache warm, pip's off)",
        "(b) matrix of 1 cell(s): cached/cold = 0.020 (cached 0.4s, --fresh 20.0s)",
    ]


def test_a_failing_step_is_an_error_not_a_fast_number(tmp_path):
    with pytest.raises(bench.BenchError, match="exit 3"):
        bench.run_timed(["sh", "-c", "echo boom >&2; exit 3"], tmp_path)


def test_the_pip_side_builds_on_the_python_a_matrix_run_finds(tmp_path, monkeypatch):
    """No Python of its own: the bench asks uv exactly as a matrix run does (Envs.check_python)."""
    uv = tmp_path / "uv"
    uv.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).with_name('fake_uv.py')} \"$@\"\n")
    uv.chmod(0o755)
    monkeypatch.setenv("COMPAT_UV", str(uv))
    log: list[tuple[str, Path | None]] = []
    bench.bench(CELL, Settings(python="3.11"), tmp_path / "matrix.toml", [CELL.only], runner=fake_runner(log),
                work=tmp_path / "w")
    venv = next(c for c, _ in log if "-m venv --clear" in c)
    assert venv.startswith(f"{sys.executable} -m venv")  # the path the (fake) uv printed
    with pytest.raises(EnvError, match="settings.python: Python 3.9 is not available"):
        bench.bench(CELL, Settings(python="3.9"), tmp_path / "matrix.toml", [CELL.only], runner=fake_runner([]),
                    work=tmp_path / "w")


def test_every_bench_error_is_a_compat_error():
    from compat.contract import CompatError
    from compat.harness import floor, timing

    assert issubclass(timing.BenchError, CompatError) and bench.BenchError is floor.BenchError is timing.BenchError


# ---- a cell against its floor (compat/harness/floor.py), every step faked --------------------


def _cell(seconds: float, training: float = 0.4):
    from compat.contract import CellResult

    return CellResult("0.12.2", "4.46.3", "latest", "compatible", seconds=seconds,
                      training={"steps": 3, "seconds": training, "dtype": "bfloat16"})


def test_floor_ratios_from_warm_cold_and_store_cold_runs(tmp_path):
    from compat.harness import floor

    envs, store = tmp_path / "envs", tmp_path / "bytecode"
    (envs / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    store.mkdir()
    (store / "k").write_text("pyc")
    pins = tmp_path / "pins" / "trl0.12.2-tf4.46.3.txt"
    runs: list[tuple[bool, bool, bool]] = []  # (environment, kept pins, store present) at each cell run
    seconds = iter([9.0, 8.0, 8.4, 8.2, 11.0, 10.6, 10.8, 9.5, 9.7, 9.6, 16.0])
    floors = iter([5.6] * 9 + [7.6])  # the empty-store cell's own floor is slower

    def run(only: str, out: Path):
        runs.append(((envs / "trl0.12.2-tf4.46.3").exists(), pins.exists(), (store / "k").exists()))
        (envs / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True, exist_ok=True)
        pins.parent.mkdir(exist_ok=True)
        pins.write_text("trl==0.12.2\n")  # a run that syncs keeps its pins
        return _cell(next(seconds))

    def timer(cmd, env):
        return next(floors) if cmd[2] == floor.FLOOR else 5.6

    figures = floor.measure("trl==0.12.2,transformers==4.46.3", envs, store, tmp_path / "out", run, timed=timer, runs=3)
    assert runs[:4] == [(True, False, True)] + [(True, True, True)] * 3  # first (filling) run, then 3 warm
    assert runs[4:7] == [(False, False, True)] * 3  # cold: environment and kept pins removed, store kept
    assert runs[7:10] == [(False, True, True)] * 3  # rebuilt: environment removed, pins kept
    assert runs[10] == (False, False, False)  # and the store moved aside too: the very first cell of a machine
    assert (store / "k").read_text() == "pyc"  # and restored afterwards
    assert figures.floor == pytest.approx(6.0)
    lines = figures.render()
    assert lines[0] == ("floor 6.00s = imports 5.60s + training 0.40s (warm bytecode; ends with os._exit, as the "
                        "cell's suite does)")
    assert lines[1] == "warm cell / floor = 1.4x (1.33-1.40x over 3 rounds)"
    assert lines[2].startswith("cold cell / floor = 1.8x (")
    assert lines[3].startswith("rebuilt cell / floor = 1.6x (")
    assert lines[4] == "cold cell, empty bytecode store / floor = 2.0x (1 round)"
    assert all(len(line) < 120 for line in lines)
    detail = figures.detail()
    assert detail["ratios"]["warm cell / floor"]["median"] == pytest.approx(1.4, abs=0.05)
    assert len(detail["ratios"]["warm cell / floor"]["rounds"]) == 3


def test_a_later_run_that_did_not_train_ends_the_bench(tmp_path):
    from compat.contract import CellResult
    from compat.harness import floor

    (tmp_path / "envs" / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    results = iter([_cell(8.0), CellResult("0.12.2", "4.46.3", "latest", "error", seconds=1.0)])
    with pytest.raises(bench.BenchError, match="a later run of .* is error"):
        floor.measure("trl==0.12.2,transformers==4.46.3", tmp_path / "envs", tmp_path / "s", tmp_path / "o",
                      lambda only, out: next(results), timed=lambda cmd, env: 2.0, runs=3, empty_store=False)


def test_every_ratio_is_the_median_of_runs_each_over_the_floor_of_its_round(tmp_path):
    """A drifting machine: each warm round shares a load, which moves between rounds. Every ratio is the
    median over rounds, not a median over a median, nor a mean; the floors' order rotates by round."""
    from compat.harness import floor

    (tmp_path / "envs" / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    events: list[str] = []
    loads = iter([1.2, 2.0, 1.0])  # the load of rounds 2 and 3, then back to idle
    load = [1.0]
    teardown = iter([0.5, 0.9, 0.55])  # not proportional to the load: a difference of medians says 0.9s
    names = {floor.FLOOR: "floor", floor.IMPORTS: "usual", floor.IMPORTS_NO_GC: "no-gc"}
    # Warm runs over floor + training (2.2 x load): 1.3x, 1.9x, 1.5x; the rest 2.0x.
    warm_seconds = iter([2.2 * 1.0 * 1.3, 2.2 * 1.2 * 1.9, 2.2 * 2.0 * 1.5])
    cells = [0]

    def timer(cmd, env):
        name = names[cmd[2]]
        events.append(name)
        return {"floor": 2.0 * load[0], "no-gc": 1.7 * load[0]}.get(name) or 2.0 * load[0] + next(teardown)

    def run(only, out):
        events.append("cell")
        cells[0] += 1
        if cells[0] == 1:
            return _cell(4.4, training=0.2)
        if cells[0] <= 4:
            result = _cell(next(warm_seconds), training=0.2 * load[0])
            load[0] = next(loads)
            return result
        return _cell(4.4, training=0.2)

    figures = floor.measure("trl==0.12.2,transformers==4.46.3", tmp_path / "envs", tmp_path / "s", tmp_path / "o",
                            run, timed=timer, runs=3, empty_store=False)
    assert events == (["cell"] + ["floor", "usual", "no-gc", "cell", "usual", "no-gc", "floor", "cell",
                                  "no-gc", "floor", "usual", "cell"] + ["floor", "cell"] * 6)
    lines = figures.render()
    assert lines[0].startswith("floor 2.20s = imports 2.00s + training 0.20s")
    # Median 1.5x; a mean would say 1.6x, the median cell over the median floor 1.9x.
    assert lines[1] == "warm cell / floor = 1.5x (1.30-1.90x over 3 rounds)"
    assert lines[2].startswith("cold cell / floor = 2.0x")
    usual = next(x for x in lines if "usual exit" in x)
    # Over usual + training: 2.86/2.7, 5.016/3.54, 6.6/4.95; the teardown is the median of each round's difference.
    assert usual.startswith("warm cell / floor with Python's usual exit = 1.3x (")
    teardown = next(x for x in lines if x.startswith("interpreter teardown"))
    assert teardown.startswith("interpreter teardown the cell skips = 0.55s")
    no_gc = next(x for x in lines if "imported the cell's way" in x)
    assert no_gc.startswith("warm cell / floor imported the cell's way = 1.7x")  # over 1.9 x load: 1.51, 2.2, 1.74


def test_the_generated_programs_compile_and_set_the_collector_as_the_suite_does():
    from compat.harness import floor

    for code in (floor.FLOOR, floor.IMPORTS_NO_GC, floor.BARE_RUN, floor.BARE_RUN_NO_GC):
        compile(code, "<bench>", "exec")
    assert floor.FLOOR.startswith(floor.IMPORTS) and floor.FLOOR.endswith("os._exit(0)")
    # Off before the imports, back on (frozen, as tests/cell/conftest.py sets it) before the exit.
    no_gc = floor.IMPORTS_NO_GC
    assert no_gc.index("gc.disable()") < no_gc.index(floor.IMPORTS) < no_gc.index("gc.freeze()") < no_gc.index("os._exit")
    bare = floor.BARE_RUN_NO_GC
    assert bare.index("gc.disable()") < bare.index("discover_once(") < bare.index("gc.freeze()") < bare.index("runs.build(")
    assert "gc." not in floor.BARE_RUN and floor.BARE_RUN.replace("\n", "") == bare.replace(floor.GC_OFF, "").replace(
        floor.GC_ON, "").replace("\n", "")


def _gc_calls(source: str) -> list[str]:
    """Every ``gc.<name>(...)`` call in ``source``, in order, as normalised source (10_000 reads 10000)."""
    return [ast.unparse(node) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", None) == "gc"]


def test_the_floor_sets_the_collector_exactly_as_the_cell_suite_does():
    """The floor imported the suite's way copies the suite's collector settings into a string; this ties
    the copy to tests/cell/conftest.py's source, so a change to either side alone fails here."""
    from compat.harness import floor

    conftest = (Path(floor.__file__).parents[2] / "tests" / "cell" / "conftest.py").read_text(encoding="utf-8")
    suite = _gc_calls(conftest)
    assert suite, "the cell suite sets no collector settings any more: drop the bench's copy"
    assert _gc_calls(floor.GC_OFF + floor.GC_ON) == suite
    assert _gc_calls("gc.disable()\ngc.set_threshold(700, 10, 10)") != suite  # a differing copy is caught


def test_bare_training_runs_split_the_gap_between_stack_and_checks(tmp_path):
    """Beside the floor: one process with the imports, one trainer built with the keyword the cell
    measured accepted, and its steps, timed in the cell's own environment - imported with Python's
    defaults, and the cell suite's way - in each warm round."""
    from dataclasses import replace

    from compat.harness import floor

    envs = tmp_path / "envs"
    (envs / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    rounds = [0]
    per_round = {floor.FLOOR: [2.0, 3.0, 2.5], floor.BARE_RUN: [3.5, 4.6, 3.2], floor.BARE_RUN_NO_GC: [2.8, 3.9, 2.6]}
    warm = iter([8.0, 9.0, 7.0])
    timed: list[tuple[list[str], dict[str, str]]] = []

    def timer(cmd, env):
        timed.append((list(cmd), env))
        if cmd[2] in per_round and rounds[0] < 3:
            return per_round[cmd[2]][rounds[0]]
        return {floor.IMPORTS: 2.5, floor.IMPORTS_NO_GC: 1.7}.get(cmd[2], 2.0)

    def run(only, out):
        seconds = 8.0  # the first (filling) run
        if timed:  # a round ends
            rounds[0] += 1
            seconds = next(warm, 8.0)
        return replace(_cell(seconds), keyword={"processing_class": "accepted", "tokenizer": "rejected"})

    figures = floor.measure("trl==0.12.2,transformers==4.46.3", envs, tmp_path / "no-store", tmp_path / "out",
                            run, timed=timer, runs=3, threads=1)
    bare = [(cmd, env) for cmd, env in timed if cmd[2] in (floor.BARE_RUN, floor.BARE_RUN_NO_GC)]
    assert len(bare) == 6 and all(cmd[-2:] == ["kto", "processing_class"] for cmd, _ in bare)
    env = bare[0][1]
    assert env["HF_HUB_OFFLINE"] == "1" and env["OMP_NUM_THREADS"] == "1" and "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPATH"] == str(Path(floor.__file__).parents[2])  # the checkout: the cell package comes from it
    lines = figures.render()
    plain = next(x for x in lines if x.startswith("bare training run /"))
    # Each over its own round's floor + 0.4: 3.5/2.4, 4.6/3.4, 3.2/2.9 (over one floor it would say 1.2x).
    assert plain.startswith("bare training run / floor = 1.4x (")
    # The warm cell over the bare run of its round: 8/3.5, 9/4.6, 7/3.2 (unpaired medians: 2.3x).
    assert "warm cell / bare training run = 2.2x (same rounds)" in lines
    suites_way = next(x for x in lines if x.startswith("bare training run imported the cell's way"))
    assert suites_way.startswith("bare training run imported the cell's way / floor = 1.1x (")
    assert "warm cell / bare training run imported the cell's way = 2.7x (same rounds)" in lines


def test_no_bare_run_when_only_a_deprecated_keyword_builds(tmp_path):
    from dataclasses import replace

    from compat.harness import floor

    (tmp_path / "envs" / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    figures = floor.measure("trl==0.12.2,transformers==4.46.3", tmp_path / "envs", tmp_path / "s", tmp_path / "o",
                            lambda only, out: replace(_cell(8.0), keyword={"processing_class": "rejected",
                                                                           "tokenizer": "deprecated"}),
                            timed=lambda cmd, env: 2.6, runs=1)
    assert not figures.bare and not any(line.startswith("bare") for line in figures.render())


def test_floor_refuses_a_cell_that_does_not_train(tmp_path):
    from compat.contract import CellResult
    from compat.harness import floor

    with pytest.raises(bench.BenchError, match="not compatible"):
        floor.measure("trl==0.12.2,transformers==4.45.2", tmp_path, tmp_path, tmp_path,
                      lambda only, out: CellResult("0.12.2", "4.45.2", "latest", "incompatible"))

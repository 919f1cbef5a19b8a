"""`compat bench` arithmetic and output, with every timed step faked (the real bench is not a test)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from packaging.version import Version

from compat.harness import bench
from compat.harness.config import Settings
from compat.harness.plan import Cell

CELL = Cell(Version("0.12.2"), Version("4.46.3"))
SECONDS = {"compile": 0.5, "venv": 0.2, "sync": 2.8, "-m venv": 3.0, "pip install": 87.0, "--fresh": 20.0, "matrix": 0.4}


def fake_runner(log: list[tuple[str, Path | None]]):
    def run(cmd: Sequence[str], cwd: Path | None) -> float:
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
        "(a) env setup, one cell: pip/uv = 30.0x (pip 90.0s: python -m venv + pip install --no-cache-dir; "
        "uv 3.0s: uv venv + uv pip sync, warm cache; lock resolved once in 0.5s)",
        "(b) matrix of 1 cell(s): cached/cold = 0.020 (cached rerun 0.4s; cold --fresh run 20.0s)",
    ]


def test_a_failing_step_is_an_error_not_a_fast_number(tmp_path):
    with pytest.raises(bench.BenchError, match="exit 3"):
        bench.run_timed(["sh", "-c", "echo boom >&2; exit 3"], tmp_path)


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

    def run(only: str, out: Path):
        runs.append(((envs / "trl0.12.2-tf4.46.3").exists(), pins.exists(), (store / "k").exists()))
        (envs / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True, exist_ok=True)
        pins.parent.mkdir(exist_ok=True)
        pins.write_text("trl==0.12.2\n")  # a run that syncs keeps its pins
        return _cell(next(seconds))

    figures = floor.measure("trl==0.12.2,transformers==4.46.3", envs, store, tmp_path / "out", run,
                            timed=lambda cmd, env: 5.6, runs=3)
    assert runs[:4] == [(True, False, True)] + [(True, True, True)] * 3  # first (filling) run, then 3 warm
    assert runs[4:7] == [(False, False, True)] * 3  # cold: environment and kept pins removed, store kept
    assert runs[7:10] == [(False, True, True)] * 3  # rebuilt: environment removed, pins kept
    assert runs[10][0] is False and runs[10][2] is False  # the store moved aside for the very-first-cell figure
    assert (store / "k").read_text() == "pyc"  # and restored afterwards
    assert figures.floor == pytest.approx(6.0) and figures.warm == 8.2 and figures.cold == 10.8
    assert figures.rebuilt == 9.6
    lines = figures.render()
    assert "warm cell / floor = 1.4x" in lines[1] and "cold cell / floor = 1.8x" in lines[2]
    assert "rebuilt cell / floor = 1.6x" in lines[3]
    assert "cold cell, empty bytecode store / floor = 2.7x" in lines[4]


def test_each_warm_and_cold_run_is_over_the_floor_timed_just_before_it(tmp_path):
    """A drifting machine: the floor and the cells slow down together. Paired, the ratio stays put;
    a median over a median taken minutes apart would not."""
    from compat.harness import floor

    (tmp_path / "envs" / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    events: list[str] = []
    load = iter([1.0, 1.0, 1.5, 2.0, 2.0, 2.0])  # the machine's slowdown at each floor timing
    factor = [1.0]

    def timer(cmd, env):
        if cmd[2] != floor.FLOOR:
            return 1.0
        factor[0] = next(load)
        events.append("floor")
        return 2.6 * factor[0]

    def run(only, out):
        events.append("cell")
        return _cell(round(4.2 * factor[0], 2), training=0.4 * factor[0])

    figures = floor.measure("trl==0.12.2,transformers==4.46.3", tmp_path / "envs", tmp_path / "s", tmp_path / "o",
                            run, timed=timer, runs=3, empty_store=False)
    assert events[:2] == ["cell", "floor"]  # the first (filling) run, then floor and cell alternate
    assert events[1:13] == ["floor", "cell"] * 6  # 3 warm and 3 cold runs
    assert figures.warm_pairs == pytest.approx((1.4,) * 3) and figures.cold_pairs == pytest.approx((1.4,) * 3)
    lines = figures.render()
    assert lines[1].startswith("warm cell / floor = 1.4x (median of 3 runs each over the floor timed just before it: "
                               "1.40-1.40x)")
    assert lines[2].startswith("cold cell / floor = 1.4x")
    assert figures.imports == pytest.approx(2.6 * 1.75)  # the median of the 6 floor timings


def test_bare_training_run_splits_the_gap_between_stack_and_checks(tmp_path):
    """Beside the floor: one process with the imports, one trainer built with the keyword the cell
    measured accepted, and its steps, timed in the cell's own environment."""
    from dataclasses import replace

    from compat.harness import floor

    envs = tmp_path / "envs"
    (envs / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    cell = replace(_cell(8.0), keyword={"processing_class": "accepted", "tokenizer": "rejected"})
    timed: list[tuple[list[str], dict[str, str]]] = []

    def timer(cmd, env):
        timed.append((list(cmd), env))
        return {floor.FLOOR: 2.6, floor.IMPORTS_NO_GC: 2.0, floor.IMPORTS: 3.2}.get(cmd[2], 4.0)

    figures = floor.measure("trl==0.12.2,transformers==4.46.3", envs, tmp_path / "no-store", tmp_path / "out",
                            lambda only, out: cell, timed=timer, runs=3, threads=1)
    bare = [(cmd, env) for cmd, env in timed if cmd[2] == floor.BARE_RUN]
    assert len(bare) == 3 and bare[0][0][-2:] == ["kto", "processing_class"]
    env = bare[0][1]
    assert env["HF_HUB_OFFLINE"] == "1" and env["OMP_NUM_THREADS"] == "1" and "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPATH"] == str(Path(floor.__file__).parents[2])  # the checkout: the cell package comes from it
    assert figures.bare == 4.0 and figures.floor == pytest.approx(3.0)
    lines = figures.render()
    line = next(x for x in lines if x.startswith("bare"))
    assert line.startswith("bare training run / floor = 1.3x (4.0s") and "warm cell / bare run = 2.0x" in line
    # The floor again with the collector off while importing, as the cell suite imports: 2.0s + 0.4s.
    assert [x for x, _ in timed].count([str(envs / "trl0.12.2-tf4.46.3" / "bin" / "python"), "-c", floor.IMPORTS_NO_GC]) == 3
    assert figures.imports_no_gc == 2.0
    assert lines[-1].startswith("warm cell / floor with the collector off while importing = 3.3x (floor 2.4s")
    # The floor ends as the cell's suite does; ending the usual way (teardown) is printed beside it: 3.2s + 0.4s.
    assert floor.FLOOR.startswith(floor.IMPORTS) and floor.FLOOR.endswith("os._exit(0)")
    assert floor.IMPORTS_NO_GC.endswith(floor.FLOOR)
    assert figures.imports_teardown == 3.2
    assert lines[-2].startswith("warm cell / floor with Python's usual exit = 2.2x (floor 3.6s: 0.6s of interpreter "
                                "teardown the cell skips")


def test_no_bare_run_when_only_a_deprecated_keyword_builds(tmp_path):
    from compat.harness import floor

    (tmp_path / "envs" / "trl0.12.2-tf4.46.3" / "bin").mkdir(parents=True)
    figures = floor.measure("trl==0.12.2,transformers==4.46.3", tmp_path / "envs", tmp_path / "s", tmp_path / "o",
                            lambda only, out: _cell(8.0), timed=lambda cmd, env: 2.6, runs=1)
    assert figures.bare is None and not any(line.startswith("bare") for line in figures.render())


def test_floor_refuses_a_cell_that_does_not_train(tmp_path):
    from compat.contract import CellResult
    from compat.harness import floor

    with pytest.raises(floor.FloorError, match="not compatible"):
        floor.measure("trl==0.12.2,transformers==4.45.2", tmp_path, tmp_path, tmp_path,
                      lambda only, out: CellResult("0.12.2", "4.45.2", "latest", "incompatible"))

"""A cell against its floor: how close a real cell runs to the least it could cost.

The floor of a compatible cell is one Python process importing torch,
transformers and trl with warm bytecode (then ``from trl import KTOTrainer``),
plus the training steps the cell itself measured. The floor process ends as
the cell's suite does, with ``os._exit``: interpreter teardown after torch is
imported takes about half a second, the suite skips it, and a floor that paid
it would flatter every ratio. The floor ending the usual way is printed beside
it, as this bench measured it until then. Everything else a cell
does (resolve, environment, the suite's other probes, the adapter run) is
overhead against it. Measured side by side in one run, as ratios:

- warm cell: its environment and bytecode exist (a rerun with ``--fresh``);
- cold cell: its environment and kept pins are deleted first, so it resolves,
  then builds the environment, with the shared bytecode store as a matrix run
  has it (a new cell: a new release, a fresh CI runner);
- rebuilt cell: its environment was collected but its pins were kept (a rerun
  after a suite change): the environment is rebuilt while resolving;
- cold cell with an empty bytecode store as well: the very first cell of a machine.

Each warm and cold run is paired with a floor timed just before it, and the
printed ratio is the median of those pairs: the load of a shared machine
drifts over minutes, so a ratio of two medians taken minutes apart moves with
it, while the two sides of one pair share it.

Beside them, a bare training run: the floor's imports, then one trainer built
from the cell's own tiny recipe and its steps, in one process - what any
training script on the pair costs. It splits the gap to the floor into what
the stack itself costs past its imports (trainer construction imports more,
e.g. accelerate pulling in ``torch._dynamo``) and what the cell's checks add.

Every step goes through two injectable callables (run one cell through the
real CLI; time a command), so the arithmetic is tested without installs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from compat.contract import CellResult, ContractError, Status, loads_cell
from compat.harness import lock, suite
from compat.harness.envs import kept_pins

IMPORTS = "import torch, transformers, trl; from trl import KTOTrainer"
# The floor process: the imports, then the exit the cell's suite takes (tests/cell/conftest.py), no teardown.
FLOOR = IMPORTS + "; import os; os._exit(0)"
# The same imports as the cell suite runs them: tests/cell/conftest.py keeps the cyclic collector off
# while the stack imports. Printed beside the floor, so the ratio's gain from that is in plain view.
IMPORTS_NO_GC = "import gc; gc.disable(); " + FLOOR
# The cell's own recipe (compat.cell), one trainer, its steps; os._exit skips teardown as the cell's suite does.
BARE_RUN = """
import os, sys, tempfile
from pathlib import Path
from datasets import Dataset
from compat.cell import runs
from compat.cell.discover import discover_once
from compat.cell.tiny import make_tokenizer
from compat.trainers import get
spec = get(sys.argv[1])
disc = discover_once(spec.candidates, (spec.config_class, spec.trainer_class))
tok = make_tokenizer()
trainer = runs.build(spec, disc, sys.argv[2], tok, Dataset.from_list(spec.rows(8, False)), Path(tempfile.mkdtemp()))
os._exit(0 if runs.train(trainer)["steps"] == runs.STEPS else 1)
"""

RunCell = Callable[[str, Path], CellResult]  # (--only value, out dir) -> the cell's result
TimeCmd = Callable[[Sequence[str], dict[str, str]], float]


class FloorError(RuntimeError):
    """A measured step failed or the cell did not train: a ratio would be meaningless."""


@dataclass(frozen=True)
class CellFigures:
    pair: str
    imports: float  # warm-bytecode import of torch + transformers + trl, median
    training: float  # the training steps the cell recorded
    warm: float  # the cell's own wall time, environment and bytecode warm (median)
    cold: float  # ... environment deleted first (median)
    cold_no_store: float | None = None  # ... and the bytecode store emptied too (one run)
    runs: int = 3
    bare: float | None = None  # imports + one trainer from the cell's recipe + its steps, one process (median)
    rebuilt: float | None = None  # environment deleted, its pins kept (median)
    imports_no_gc: float | None = None  # the floor's imports with the collector off, as the cell imports (median)
    imports_teardown: float | None = None  # the floor's imports ending the usual way, teardown included (median)
    # Each warm and cold run over the floor timed just before it (its imports + that run's own steps):
    # a shared machine's load drifts over minutes, and a pair shares it. The printed ratio is their median.
    warm_pairs: tuple[float, ...] = ()
    cold_pairs: tuple[float, ...] = ()

    @property
    def floor(self) -> float:
        return self.imports + self.training

    def ratio(self, seconds: float) -> float:
        return seconds / max(self.floor, 1e-9)

    def _paired(self, name: str, seconds: float, pairs: tuple[float, ...]) -> str:
        if not pairs:
            return f"{name} / floor = {self.ratio(seconds):.1f}x"
        return (f"{name} / floor = {statistics.median(pairs):.1f}x (median of {len(pairs)} runs each over the floor "
                f"timed just before it: {min(pairs):.2f}-{max(pairs):.2f}x)")

    def render(self) -> list[str]:
        lines = [f"floor {self.floor:.1f}s = import torch+transformers+trl with warm bytecode {self.imports:.1f}s "
                 f"+ the cell's training steps {self.training:.1f}s (medians; the imports timed before each of "
                 f"{self.runs} warm and {self.runs} cold cells)",
                 f"{self._paired('warm cell', self.warm, self.warm_pairs)} (cell {self.warm:.1f}s: environment and "
                 "bytecode exist)",
                 f"{self._paired('cold cell', self.cold, self.cold_pairs)} (cell {self.cold:.1f}s: resolved, then a "
                 "new environment; bytecode store as a matrix run has it)"]
        if self.rebuilt is not None:
            lines.append(f"rebuilt cell / floor = {self.ratio(self.rebuilt):.1f}x (cell {self.rebuilt:.1f}s: environment "
                         "collected, rebuilt from its kept pins while resolving)")
        if self.cold_no_store is not None:
            lines.append(f"cold cell, empty bytecode store / floor = {self.ratio(self.cold_no_store):.1f}x "
                         f"(cell {self.cold_no_store:.1f}s: the first cell on a new machine)")
        if self.bare is not None:
            lines.append(f"bare training run / floor = {self.ratio(self.bare):.1f}x ({self.bare:.1f}s: the imports, one "
                         f"trainer from the cell's recipe and its steps; warm cell / bare run = "
                         f"{self.warm / max(self.bare, 1e-9):.1f}x is what the cell's checks add)")
        if self.imports_teardown is not None:
            floor = self.imports_teardown + self.training
            lines.append(f"warm cell / floor with Python's usual exit = {self.warm / max(floor, 1e-9):.1f}x (floor "
                         f"{floor:.1f}s: {self.imports_teardown - self.imports:.1f}s of interpreter teardown the cell "
                         "skips; the floor this bench used before)")
        if self.imports_no_gc is not None:
            floor = self.imports_no_gc + self.training
            lines.append(f"warm cell / floor with the collector off while importing = {self.warm / max(floor, 1e-9):.1f}x "
                         f"(floor {floor:.1f}s: the cell suite imports that way; the floor above uses Python's defaults)")
        return lines


def run_cell_cli(config: Path) -> RunCell:
    """One cell through the real CLI (``matrix --fresh --only``), its result read back."""
    def run(only: str, out: Path) -> CellResult:
        cmd = [sys.executable, "-m", "compat", "matrix", "--fresh", "--config", str(config), "--out", str(out),
               "--only", only]
        proc = subprocess.run(cmd, cwd=config.resolve().parent, capture_output=True, text=True)
        cells = sorted((out / "cells").glob("*.json"), key=lambda p: p.stat().st_mtime)
        if proc.returncode != 0 or not cells:
            raise FloorError(f"matrix --only {only} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        try:
            return loads_cell(cells[-1].read_text(encoding="utf-8"), str(cells[-1]))
        except ContractError as exc:
            raise FloorError(str(exc)) from None
    return run


def time_cmd(cmd: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise FloorError(f"{' '.join(cmd[:3])} ... failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return seconds


def measure(only: str, envs: Path, store: Path, out: Path, run: RunCell, timed: TimeCmd = time_cmd,
            runs: int = 3, empty_store: bool = True, threads: int = 0) -> CellFigures:
    """``threads``: the OMP threads the cell ran with (0: unset), so the bare run trains as the cell did."""
    first = run(only, out)  # builds the environment and fills the bytecode store
    if first.status != Status.COMPATIBLE or not first.training:
        raise FloorError(f"{first.id} is {first.status}, not compatible: the floor is defined for a cell that trains")
    env_dir = envs / _env_id(first)
    python = [str(env_dir / "bin" / "python"), "-c", FLOOR]
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    floors: list[float] = []

    def paired(cell: Callable[[], CellResult]) -> tuple[CellResult, float]:
        """One cell run and its ratio over the floor timed just before it."""
        floors.append(timed(python, environ))
        result = cell()
        return result, result.seconds / max(floors[-1] + _trained(result), 1e-9)

    imports_no_gc = statistics.median(timed([*python[:2], IMPORTS_NO_GC], environ) for _ in range(runs))
    imports_teardown = statistics.median(timed([*python[:2], IMPORTS], environ) for _ in range(runs))
    keyword = next((k for k, state in first.keyword.items() if state == "accepted"), None)
    bare = None
    if keyword is not None:  # only a deprecated keyword builds: no plain run to compare with
        script = [str(env_dir / "bin" / "python"), "-c", BARE_RUN, first.trainer, keyword]
        cell_env = suite.environment(suite.checkout(), out / "bare.jsonl", out / "bare-hf", first.trainer, threads)
        bare = statistics.median(timed(script, cell_env) for _ in range(runs))
    warm = [paired(lambda: run(only, out)) for _ in range(runs)]

    def cold_run() -> CellResult:
        _remove(env_dir)
        kept_pins(envs, env_dir.name).unlink(missing_ok=True)
        return run(only, out)

    cold = [paired(cold_run) for _ in range(runs)]
    rebuilt = []
    for _ in range(runs):
        _remove(env_dir)
        rebuilt.append(run(only, out))
    cold_no_store = None
    if empty_store and store.is_dir():
        aside = store.with_name(store.name + ".bench-aside")
        with lock.store(store, exclusive=True) as alone:  # held only while the store moves, not while the cell runs
            if not alone:  # a matrix run is seeding from the store: never pull it from under it
                raise FloorError(f"another run is using {store}; rerun the bench when it ends, or pass --keep-store")
            shutil.rmtree(aside, ignore_errors=True)
            store.rename(aside)
        try:
            _remove(env_dir)
            cold_no_store = run(only, out).seconds
        finally:
            with lock.store(store, exclusive=True):
                shutil.rmtree(store, ignore_errors=True)
                aside.rename(store)
    results = [first, *(r for r, _ in warm), *(r for r, _ in cold), *rebuilt]
    return CellFigures(only, statistics.median(floors), statistics.median(_trained(r) for r in results),
                       statistics.median(r.seconds for r, _ in warm), statistics.median(r.seconds for r, _ in cold),
                       cold_no_store=cold_no_store, runs=runs, bare=bare,
                       rebuilt=statistics.median(r.seconds for r in rebuilt), imports_no_gc=imports_no_gc,
                       imports_teardown=imports_teardown, warm_pairs=tuple(x for _, x in warm),
                       cold_pairs=tuple(x for _, x in cold))


def _trained(result: CellResult) -> float:
    return float((result.training or {}).get("seconds") or 0.0)


def _remove(env_dir: Path) -> None:
    """Delete the cell's environment the way the harness does: holding its lock, so a matrix run
    using it finishes first."""
    with lock.shared_env(env_dir):
        shutil.rmtree(env_dir, ignore_errors=True)


def _env_id(result: CellResult) -> str:
    from compat.contract import cell_id

    return cell_id(result.trl, result.transformers, result.resolution, result.forced)

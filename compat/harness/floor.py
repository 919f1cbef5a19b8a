"""A cell against its floor: how close a real cell runs to the least it could cost.

The floor of a compatible cell is one Python process importing torch,
transformers and trl with warm bytecode (then ``from trl import KTOTrainer``),
plus the training steps the cell itself measured. Everything else a cell does
(resolve, environment, the suite's other probes, the adapter run) is overhead
against it. Measured side by side in one run, as ratios:

- warm cell: its environment and bytecode exist (a rerun with ``--fresh``);
- cold cell: its environment and kept pins are deleted first, so it resolves,
  then builds the environment, with the shared bytecode store as a matrix run
  has it (a new cell: a new release, a fresh CI runner);
- rebuilt cell: its environment was collected but its pins were kept (a rerun
  after a suite change): the environment is rebuilt while resolving;
- cold cell with an empty bytecode store as well: the very first cell of a machine.

The floor process ends as the cell's suite does, with ``os._exit``:
interpreter teardown after torch is imported takes about 0.6 s here,
the suite skips it, and a floor that paid it would flatter every ratio. The
floor ending the usual way is printed beside it, and so is the floor
imported the suite's way (collector off).

Every ratio is the median over rounds of a run over the floor timed in its
round: the load of a shared machine drifts over the minutes a bench takes, so
a ratio of two medians taken minutes apart moves with it, while the two sides
of one round share it. A warm round times the floor, its two variants and the
bare runs in an order that rotates from round to round, then the warm cell; a
cold, rebuilt or empty-store round times the floor, then the cell.

Beside the cells, a bare training run: the floor's imports, then one trainer
built from the cell's own tiny recipe and its steps, in one process - what a
plain training script on the pair costs - and the same run imported the
suite's way. They split the gap to the floor into what the stack itself costs
past its imports (trainer construction imports more, e.g. accelerate pulling
in ``torch._dynamo``) and what the cell's checks add.

Every step goes through two injectable callables (run one cell through the
real CLI; time a command), so the arithmetic is tested without installs.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from compat.contract import CellResult, ContractError, KeywordState, Status
from compat.harness import lock, suite
from compat.harness.documents import load_cell
from compat.harness.envs import kept_pins
from compat.harness.timing import BenchError, Timer, run_timed

IMPORTS = "import torch, transformers, trl; from trl import KTOTrainer"
EXIT = "import os; os._exit(0)"  # the exit the cell's suite takes (tests/cell/conftest.py): no teardown
FLOOR = f"{IMPORTS}; {EXIT}"
# The collector as the cell suite sets it (tests/cell/conftest.py, the same settings): off while the stack
# imports, then what the imports built frozen and the first generation collected less often.
GC_OFF = "import gc; gc.disable()\n"
GC_ON = "gc.freeze(); gc.set_threshold(10_000, 10, 10); gc.enable()\n"
IMPORTS_NO_GC = f"{GC_OFF}{IMPORTS}\n{GC_ON}{EXIT}\n"
# The cell's own recipe (compat.cell), one trainer, its steps; os._exit skips teardown as the cell's suite does.
# {off}/{on}: where the suite's collector settings go, around the trainer's discovery as in the suite.
_BARE = """{off}
import os, sys, tempfile
from pathlib import Path
from datasets import Dataset
from compat.cell import runs
from compat.cell.discover import discover_once
from compat.cell.tiny import make_tokenizer
from compat.trainers import get
spec = get(sys.argv[1])
disc = discover_once(spec.candidates, (spec.config_class, spec.trainer_class))
{on}
tok = make_tokenizer()
trainer = runs.build(spec, disc, sys.argv[2], tok, Dataset.from_list(spec.rows(8, False)), Path(tempfile.mkdtemp()))
os._exit(0 if runs.train(trainer)["steps"] == runs.STEPS else 1)
"""
BARE_RUN = _BARE.format(off="", on="")
BARE_RUN_NO_GC = _BARE.format(off=GC_OFF, on=GC_ON)

RunCell = Callable[[str, Path], CellResult]  # (--only value, out dir) -> the cell's result


@dataclass(frozen=True)
class Paired:
    """One timed run and the imports of a floor (or a floor variant) timed in the same round; ``training``:
    the steps the run recorded (a bare run records none: those of the warm cell of its round)."""

    seconds: float
    imports: float
    training: float

    @property
    def ratio(self) -> float:
        return self.seconds / max(self.imports + self.training, 1e-9)


def _median(runs: Sequence[Paired], attr: str = "seconds") -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def _over(runs: Sequence[Paired], others: Sequence[Paired]) -> float:
    """The median over rounds of one run's seconds over another's timed in the same round."""
    return statistics.median(a.seconds / max(b.seconds, 1e-9) for a, b in zip(runs, others, strict=True))


def _spread(ratios: Sequence[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds" if len(ratios) > 1 else "1 round"


def _runs(runs: Sequence[Paired]) -> list[dict[str, float]]:
    return [{"seconds": round(r.seconds, 3), "floor_imports": round(r.imports, 3), "training": round(r.training, 3),
             "ratio": round(r.ratio, 3)} for r in runs]


@dataclass(frozen=True)
class CellFigures:
    pair: str
    warm: tuple[Paired, ...]  # environment and bytecode warm
    cold: tuple[Paired, ...]  # environment and kept pins deleted first
    rebuilt: tuple[Paired, ...] = ()  # environment deleted, its pins kept
    cold_no_store: Paired | None = None  # ... and the bytecode store emptied too (one run)
    bare: tuple[Paired, ...] = ()  # imports + one trainer from the cell's recipe + its steps, one process
    bare_no_gc: tuple[Paired, ...] = ()  # the same, imported the cell suite's way
    # The warm runs again, over the floor ending the usual way (teardown paid) and over the floor imported
    # the cell suite's way, each variant timed in the warm run's round.
    usual_exit: tuple[Paired, ...] = ()
    no_gc: tuple[Paired, ...] = ()

    @property
    def imports(self) -> float:
        return _median([*self.warm, *self.cold], "imports")

    @property
    def training(self) -> float:
        return _median([*self.warm, *self.cold], "training")

    @property
    def floor(self) -> float:
        return self.imports + self.training

    def _series(self) -> list[tuple[str, Sequence[Paired]]]:
        """Each ratio's name (its line's opening words, which readers parse) and its rounds."""
        named = [("warm cell / floor", self.warm), ("cold cell / floor", self.cold),
                 ("rebuilt cell / floor", self.rebuilt),
                 ("cold cell, empty bytecode store / floor", [self.cold_no_store] if self.cold_no_store else []),
                 ("bare training run / floor", self.bare),
                 ("bare training run imported the cell's way / floor", self.bare_no_gc),
                 ("warm cell / floor with Python's usual exit", self.usual_exit),
                 ("warm cell / floor imported the cell's way", self.no_gc)]
        return [(name, runs) for name, runs in named if runs]

    def render(self) -> list[str]:
        """One line per figure, each under 120 characters; ``detail()`` has every round."""
        lines = [f"floor {self.floor:.2f}s = imports {self.imports:.2f}s + training {self.training:.2f}s "
                 "(warm bytecode; ends with os._exit, as the cell's suite does)"]
        for name, runs in self._series():
            ratios = [r.ratio for r in runs]
            lines.append(f"{name} = {statistics.median(ratios):.1f}x ({_spread(ratios)})")
        for name, runs in (("bare training run", self.bare), ("bare training run imported the cell's way", self.bare_no_gc)):
            if runs:  # what the cell's checks, pytest and the harness add over a plain script, in the same rounds
                lines.append(f"warm cell / {name} = {_over(self.warm, runs):.1f}x (same rounds)")
        if self.usual_exit:
            teardown = statistics.median(u.imports - w.imports for u, w in zip(self.usual_exit, self.warm, strict=True))
            lines.append(f"interpreter teardown the cell skips = {teardown:.2f}s (median of each round's difference)")
        return lines

    def detail(self) -> dict[str, object]:
        """Everything measured, round by round, for ``bench --json``."""
        return {"pair": self.pair, "floor_seconds": round(self.floor, 3), "imports_seconds": round(self.imports, 3),
                "training_seconds": round(self.training, 3),
                "ratios": {name: {"median": round(statistics.median(r.ratio for r in runs), 3), "rounds": _runs(runs)}
                           for name, runs in self._series()}}


def run_cell_cli(config: Path) -> RunCell:
    """One cell through the real CLI (``matrix --fresh --only``), its result read back."""
    def run(only: str, out: Path) -> CellResult:
        cmd = [sys.executable, "-m", "compat", "matrix", "--fresh", "--config", str(config), "--out", str(out),
               "--only", only]
        run_timed(cmd, cwd=config.resolve().parent)  # a failed run raises; its time is not a figure
        cells = sorted((out / "cells").glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not cells:
            raise BenchError(f"matrix --only {only} wrote no cell result to {out / 'cells'}")
        try:
            return load_cell(cells[-1])
        except ContractError as exc:
            raise BenchError(str(exc)) from None
    return run


def measure(only: str, envs: Path, store: Path, out: Path, run: RunCell, timed: Timer = run_timed,
            runs: int = 3, empty_store: bool = True, threads: int = 0) -> CellFigures:
    """``threads``: the OMP threads the cell ran with (0: unset), so the bare run trains as the cell did."""
    first = run(only, out)  # builds the environment and fills the bytecode store
    if first.status != Status.COMPATIBLE or not first.training:
        raise BenchError(f"{first.id} is {first.status}, not compatible: the floor is defined for a cell that trains")
    env_dir = envs / _env_id(first)
    python = str(env_dir / "bin" / "python")
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def checked() -> CellResult:
        result = run(only, out)
        if result.status != Status.COMPATIBLE or not result.training:
            raise BenchError(f"a later run of {result.id} is {result.status} without training: no ratio to give")
        return result

    def cell(before: Callable[[], None] = lambda: None) -> Paired:
        """The floor, then (after ``before``) one cell run over it."""
        imports = timed([python, "-c", FLOOR], env=environ)
        before()
        result = checked()
        return Paired(result.seconds, imports, _trained(result))

    # Each warm round times the floor, its two variants and the bare runs, then the warm cell. Their order
    # rotates from round to round, so a process's place in the row does not become part of its figure.
    row = [("floor", [FLOOR], environ), ("usual", [IMPORTS], environ), ("no_gc", [IMPORTS_NO_GC], environ)]
    keyword = next((k for k, state in first.keyword.items() if state == KeywordState.ACCEPTED), None)
    if keyword is not None:  # None: only a deprecated keyword builds, no plain run to compare with
        cell_env = suite.environment(suite.checkout(), out / "bare.jsonl", out / "bare-hf", first.trainer, threads)
        row += [("bare", [BARE_RUN, first.trainer, keyword], cell_env),
                ("bare_no_gc", [BARE_RUN_NO_GC, first.trainer, keyword], cell_env)]
    rounds: dict[str, list[Paired]] = {name: [] for name in ("warm", "usual", "no_gc", "bare", "bare_no_gc")}
    for i in range(runs):
        turn = i % len(row)
        took = {name: timed([python, "-c", *args], env=env) for name, args, env in row[turn:] + row[:turn]}
        result = checked()
        trained = _trained(result)
        rounds["warm"].append(Paired(result.seconds, took["floor"], trained))
        for name in ("usual", "no_gc"):
            rounds[name].append(Paired(result.seconds, took[name], trained))
        for name in ("bare", "bare_no_gc"):
            if name in took:
                rounds[name].append(Paired(took[name], took["floor"], trained))

    def forget_all() -> None:
        _remove(env_dir)
        kept_pins(envs, env_dir.name).unlink(missing_ok=True)

    cold = [cell(forget_all) for _ in range(runs)]
    rebuilt = [cell(lambda: _remove(env_dir)) for _ in range(runs)]
    cold_no_store = None
    if empty_store and store.is_dir():
        with _store_aside(store):
            cold_no_store = cell(forget_all)
    return CellFigures(only, tuple(rounds["warm"]), tuple(cold), rebuilt=tuple(rebuilt), cold_no_store=cold_no_store,
                       bare=tuple(rounds["bare"]), bare_no_gc=tuple(rounds["bare_no_gc"]),
                       usual_exit=tuple(rounds["usual"]), no_gc=tuple(rounds["no_gc"]))


@contextmanager
def _store_aside(store: Path) -> Iterator[None]:
    """The bytecode store moved aside while the block runs (as on a new machine), then put back. Its lock
    is held only while the store moves, not while the cell runs."""
    aside = store.with_name(store.name + ".bench-aside")
    with lock.store(store, exclusive=True) as alone:
        if not alone:  # a matrix run is seeding from the store: never pull it from under it
            raise BenchError(f"another run is using {store}; rerun the bench when it ends, or pass --keep-store")
        shutil.rmtree(aside, ignore_errors=True)
        store.rename(aside)
    try:
        yield
    finally:
        with lock.store(store, exclusive=True):
            shutil.rmtree(store, ignore_errors=True)
            aside.rename(store)


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

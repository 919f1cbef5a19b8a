"""Run cells: resolve -> environment -> in-cell suite -> CellResult, cached.

Each step is a small function; the Reporter observes progress without being
tangled into the logic (resolvelib's reporter split). Only a pair's own
behaviour becomes a verdict: an interrupt, a uv killed by a signal, a network
or index fault, or a suite that never ran is ``error`` (never cached, never
replacing a verdict), and a verdict that differs from the one measured before
is measured again before it is believed (crater's rule; a disagreement is
``flaky``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compat import trainers
from compat.contract import CellResult, ContractError, Failure, Resolution, Stage, Status, result_from_observations
from compat.harness import axes, bytecode, faults, lock, orphans, suite
from compat.harness.config import ConfigError, Settings, state_dir
from compat.harness.documents import dumps_cell, load_cell, outcome, write_cells
from compat.harness.envs import (
    Envs,
    Step,
    declared_in_env,
    declared_in_message,
    fault,
    first_error_line,
    index_args,
    pinned,
    pins_digest,
    refused,
    torch_pin,
    uninstallable,
    uv_visibility,
)
from compat.harness.files import atomic_write
from compat.harness.lock import shared_env
from compat.harness.plan import Cell


def cache_key(cell: Cell, settings: Settings, suite_hash: str, index: str = "") -> str:
    """Everything a cell's result depends on: its axes and how it was resolved, the Python, torch,
    the cell requirements, the suite, and where packages came from. A two-axis cell's key is what it
    was before further axes existed; further axes are appended."""
    parts = (str(cell.trl), str(cell.transformers), cell.resolution, cell.trainer, settings.python,
             torch_pin(cell, settings) or "", suite_hash, "forced" if cell.forced else "", index,
             *settings.cell_requirements, *(settings.as_of_release_exempt if cell.resolution == Resolution.AS_OF_RELEASE else ()),
             *(f"{name}=={version}" for name, version in axes.further(cell)))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def said(result: CellResult) -> str:
    """A result in a progress line: its status, the failing stage, and for an error its fault (the
    report keeps the measured verdict over an error, so this line is where the run's fault shows)."""
    f = result.failure
    return f"{result.status}" + (f" at {f.stage}" if f else "") + (f", fault: {f.fault}" if f and f.fault else "")


class Reporter:
    """Plain-line progress; subclass to render differently."""

    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        # Verdicts that are not compatible (incompatible, unresolvable, flaky) and harness errors, kept apart:
        # "failed" would read as the harness failing, which only an error is.
        self.not_compatible = self.errors = 0
        self._lock = threading.Lock()

    def count(self, result: CellResult) -> None:
        with self._lock:
            self.done += 1
            self.errors += result.status == Status.ERROR
            self.not_compatible += result.failed and result.status != Status.ERROR

    def tally(self) -> str:
        """"3 not compatible" (and ", 1 harness error" when there was one)."""
        return f"{self.not_compatible} not compatible" + (f", {self.errors} harness error{'s' * (self.errors > 1)}"
                                                          if self.errors else "")

    def starting(self, cell: Cell) -> None:
        self._line(f"start {cell.id}")

    def rerunning(self, cell: Cell, before: CellResult, now: CellResult) -> None:
        self._line(f"{cell.id}: {now.status} now, {before.status} before: measuring again")

    def finished(self, cell: Cell, result: CellResult, cached: bool) -> None:
        self.count(result)
        how = "cached" if cached else f"{result.seconds:.1f}s"
        self._line(f"[{self.done}/{self.total}] {cell.id}: {said(result)} ({how})")

    def _line(self, text: str) -> None:
        with self._lock:
            print(f"compat: {text}", file=self.stream, flush=True)


class Gate:
    """Cells run side by side (shared); a cell measured again because its verdict changed runs alone,
    so a change caused by its neighbours (their memory, their disk, their CPU time) is not measured
    under the same pressure twice. Waiting solo runs hold new shared ones back."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._alone = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and not self._waiting)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._alone and self._running == 0)
            self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Context:
    root: Path  # the checkout: holds tests/cell and the cell-side compat package
    out: Path
    settings: Settings
    envs: Envs
    cache_dir: Path
    suite: str
    threads: int = 0
    fresh: bool = False  # ignore cached results
    stop: threading.Event = field(default_factory=threading.Event)  # set on SIGINT/SIGTERM
    retries: int = 3  # network faults are retried with exponential backoff
    backoff: float = 2.0
    sleep: Any = None  # backoff waits (tests pass a recorder); default: wait on `stop`
    bytecode: Path | None = None  # the shared .pyc store (harness/bytecode.py); None: off
    previous: Mapping[str, CellResult] = field(default_factory=dict)  # published verdicts, by cell id
    index: str = ""  # the index configuration (part of every cache key)
    gate: Gate = field(default_factory=Gate)  # cells measured again run alone

    def wait(self, seconds: float) -> None:
        (self.sleep or self.stop.wait)(seconds)


def project_context(config_path: Path, settings: Settings, out: Path, *, fresh: bool = False, jobs: int = 1,
                    previous: Mapping[str, CellResult] | None = None) -> Context:
    """The run context for the matrix file `config_path`: the cell suite comes from the kto-compat
    checkout this package lives in; `.compat/` beside the matrix file holds environments, cached
    results and the bytecode store."""
    root = suite.checkout()
    state = state_dir(config_path)
    for sub in ("envs", "results", "bytecode", "pins", "locks"):  # a read-only or clobbered .compat: one line, before any cell
        try:
            (state / sub).mkdir(parents=True, exist_ok=True)
            probe = state / sub / f".write-probe.{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"{state / sub}: the project's state directory is not writable: "
                              f"{exc.strerror or exc}") from None
    ended = orphans.end_stale(state / "running")
    if ended:
        print(f"compat: ended {len(ended)} cell suite(s) left running by a harness that was killed", file=sys.stderr)
    envs = Envs(state / "envs", settings)
    envs.check_python()
    return Context(root=root, out=out, settings=settings, envs=envs, cache_dir=state / "results",
                   suite=suite.suite_hash(root), fresh=fresh, threads=max(1, (os.cpu_count() or 1) // jobs),
                   bytecode=state / "bytecode", previous=dict(previous or {}),
                   index=" ".join(index_args(settings) + uv_visibility()))


def _result(ctx: Context, cell: Cell, status: Status, failure: Failure | None, **kw: Any) -> CellResult:
    return CellResult(cell.trl, cell.transformers, cell.resolution, status, trainer=cell.trainer, failure=failure,
                      axes=axes.strings(cell.axes), forced=cell.forced, yanked=cell.yanked, declared=cell.declared, released=cell.released,
                      suite=ctx.suite, **kw)


def _uv_failure(ctx: Context, cell: Cell, stage: Stage, step: Step, verdict: Status,
                timings: dict[str, float]) -> CellResult:
    """A failed uv step: the pair's answer only when uv itself said so; otherwise a fault (error)."""
    why = fault(step, pinned(cell, ctx.settings), ctx.stop.is_set())
    if why is None and stage == Stage.RESOLVE and not refused(step):
        why = "harness"  # uv failed without the resolver's explanation: not a verdict
    if why is None and stage == Stage.INSTALL and not uninstallable(step):
        why = "harness"  # a full disk, a permission, uv itself: the machine's fault, never the pair's
    message = first_error_line(step.output)
    if why is not None:
        return _result(ctx, cell, Status.ERROR, Failure(stage, message, "uv", fault=why), timings=timings)
    return _result(ctx, cell, verdict, Failure(stage, message, "uv"), timings=timings)


def _retry(ctx: Context, log: Any, label: str, step: Any) -> Any:
    """Run a uv step; a network fault is retried with exponential backoff, anything else is final."""
    outcome_: Any = None
    for attempt in range(ctx.retries + 1):
        outcome_ = step()
        first: Step = outcome_[0]
        log.write(f"$ {label} (attempt {attempt + 1}, {first.seconds:.1f}s, exit {first.returncode})\n{first.output}\n")
        log.flush()
        if first.ok or fault(first, {}, ctx.stop.is_set()) != "network" or attempt == ctx.retries:
            return outcome_
        ctx.wait(ctx.backoff * 2**attempt)
    return outcome_


def run_cell(ctx: Context, cell: Cell) -> CellResult:
    start = time.perf_counter()
    log_path = ctx.out / "logs" / f"{cell.id}.log"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w", encoding="utf-8", errors="replace") as log:
            result = _run_steps(ctx, cell, ctx.out / "work" / cell.id, log)
    except OSError as exc:  # a full disk or a read-only results dir: the machine's fault, not the pair's
        why = faults.of_oserror(exc)
        message = f"the harness could not write the cell's files: {exc.strerror or exc} ({exc.filename})"
        return _result(ctx, cell, Status.ERROR, Failure(Stage.IMPORT, message, fault=why),
                       seconds=round(time.perf_counter() - start, 2))
    return replace(result, seconds=round(time.perf_counter() - start, 2), log=f"logs/{cell.id}.log")


def _run_steps(ctx: Context, cell: Cell, work: Path, log: Any) -> CellResult:
    env = ctx.envs.root / cell.env_id
    if ctx.envs.known_pins(cell) is not None:  # looked at again under the lock: another run may be syncing it
        with shared_env(env):
            known = ctx.envs.known_pins(cell)
            if known is not None:
                return _speculate(ctx, cell, work, log, known)
    # Resolving needs no environment: an unresolvable pair never takes (or leaves) its lock file.
    lock, timings, failed = _resolve(ctx, cell, work, log)
    if failed is not None:
        return failed
    with shared_env(env):
        return _in_env(ctx, cell, lock, log, work, timings)


def _resolve(ctx: Context, cell: Cell, work: Path, log: Any) -> tuple[Path, dict[str, float], CellResult | None]:
    """Today's resolution: the lock and its timing, or the cell's result when it fails."""
    resolved, lock = _retry(ctx, log, "uv pip compile", lambda: ctx.envs.resolve(cell, work))
    timings = {"resolve": round(resolved.seconds, 2)}
    if resolved.ok:
        return lock, timings, None
    result = _uv_failure(ctx, cell, Stage.RESOLVE, resolved, Status.UNRESOLVABLE, timings)
    if result.status == Status.UNRESOLVABLE and result.failure:
        result = replace(result, declared=declared_in_message(result.failure.message))
    return lock, timings, result


def _speculate(ctx: Context, cell: Cell, work: Path, log: Any, installed: Path) -> CellResult:
    """The cell's environment was built before (it exists, or its pins were kept when it was
    collected): set it up from those pins and run the suite while today's resolution runs, since
    the resolver almost always returns the same pins. The suite's result stands only when it does
    (the environment is then exactly what resolving first would have installed); a failed
    resolution decides the cell as before, and new pins mean the suite runs again in the re-synced
    environment. A cell costs the longer of the two steps instead of their sum."""
    resolve_log = io.StringIO()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_resolve, ctx, cell, work / "resolve", resolve_log)
        guess = _in_env(ctx, cell, installed, log, work, {})
        lock, timings, failed = pending.result()
    log.write(resolve_log.getvalue())
    if failed is not None:
        return failed
    if pins_digest(lock.read_text()) == pins_digest(installed.read_text()):
        return replace(guess, timings={**timings, **guess.timings})
    if ctx.stop.is_set():  # the guess does not stand, and a stopping run rebuilds nothing
        return _interrupted(ctx, cell, timings)
    log.write("$ today's resolution differs from the environment's pins: the suite runs again after syncing\n")
    return _in_env(ctx, cell, lock, log, work, timings)


def _interrupted(ctx: Context, cell: Cell, timings: dict[str, float]) -> CellResult:
    """Not the pair's fault: an error, never cached; a rerun resumes the cell."""
    return _result(ctx, cell, Status.ERROR, Failure(Stage.INTERRUPTED, INTERRUPTED, fault="interrupt"), timings=timings)


def keep_lock(ctx: Context, text: str) -> str:
    """Store a cell's pins once under their id (``.compat/locks/<id>.txt``) and return the id."""
    lock_id = pins_digest(text)[:16]
    path = ctx.cache_dir.with_name("locks") / f"{lock_id}.txt"
    if not path.exists():
        atomic_write(path, text)
    return lock_id


def write_cell(ctx: Context, result: CellResult) -> None:
    """cells/<id>.json, and the lock it names beside it (locks/<id>.txt), in the report directory."""
    if result.lock:
        target = ctx.out / "locks" / f"{result.lock}.txt"
        kept = ctx.cache_dir.with_name("locks") / f"{result.lock}.txt"
        if not target.exists() and kept.exists():
            atomic_write(target, kept.read_text(encoding="utf-8"))
    write_cells(ctx.out, [result])


def _in_env(ctx: Context, cell: Cell, lock: Path, log: Any, work: Path, timings: dict[str, float]) -> CellResult:
    if ctx.stop.is_set():
        return _interrupted(ctx, cell, timings)
    installed, env_dir, reused = _retry(ctx, log, "uv venv + pip sync", lambda: ctx.envs.ensure(cell, lock))
    timings["install"] = round(installed.seconds, 2)
    if not installed.ok:
        return _uv_failure(ctx, cell, Stage.INSTALL, installed, Status.INCOMPATIBLE, timings)
    cell = replace(cell, declared=declared_in_env(env_dir))
    locked = keep_lock(ctx, lock.read_text(encoding="utf-8"))  # what the environment holds, every pin of it
    if ctx.bytecode is not None and not (reused and bytecode.seeded(env_dir)):
        start = time.perf_counter()
        bytecode.seed(env_dir, ctx.bytecode)
        timings["bytecode"] = round(time.perf_counter() - start, 2)
    began = bytecode.stamp(env_dir) if ctx.bytecode is not None else None
    ran = suite.run(ctx.root, env_dir, cell.trainer, work, log, ctx.settings.cell_timeout, ctx.threads,
                    ctx.stop.is_set, ctx.cache_dir.with_name("running"))
    timings["suite"] = round(ran.seconds, 2)
    if ctx.bytecode is not None and ran.killed is not None:
        bytecode.forget(env_dir)  # what the killed suite compiled stays unharvested: read everything next time
    if ctx.bytecode is not None and ran.killed is None:
        start = time.perf_counter()
        bytecode.harvest(env_dir, ctx.bytecode, since=began)
        timings["bytecode"] = round(timings.get("bytecode", 0.0) + time.perf_counter() - start, 2)
    ctx.envs.collect(ctx.settings.keep_environments, busy=env_dir)
    peak = ran.peak_rss_bytes
    if ran.killed == "stop":
        return _interrupted(ctx, cell, timings)
    if ran.killed == "timeout":
        message = f"cell exceeded its {ctx.settings.cell_timeout:.0f}s time limit and was killed"
        return _result(ctx, cell, Status.INCOMPATIBLE, Failure(Stage.TIMEOUT, message), timings=timings, lock=locked)
    obs = ran.observations
    if obs is None or "tests" not in obs:
        why = f"the cell suite did not run (exit {ran.returncode}); see the log"
        return _result(ctx, cell, Status.ERROR, Failure(Stage.IMPORT, why, fault="harness"), timings=timings, lock=locked)
    if ran.returncode is not None and ran.returncode < 0:
        oom = ran.returncode == -signal.SIGKILL  # nothing of ours sent it: the kernel's OOM killer, most likely
        why = f"the cell suite was killed by signal {-ran.returncode}{' (the OOM killer?)' if oom else ''}; see the log"
        return _result(ctx, cell, Status.ERROR, Failure(Stage.IMPORT, why, fault="memory" if oom else "signal"),
                       timings=timings, lock=locked)
    if obs.get("pytest_exit") not in (0, 1):
        # 0: every test passed; 1: some failed (a measurement). Anything else - no exit status at all (a
        # crash), interrupted, an internal or usage error, no tests - means the suite itself did not run.
        why = (f"the cell suite ended without pytest's exit status (exit {ran.returncode}); see the log"
               if obs.get("pytest_exit") is None else f"pytest could not run the cell suite (exit {obs['pytest_exit']})")
        return _result(ctx, cell, Status.ERROR, Failure(Stage.IMPORT, why, fault="harness"), timings=timings, lock=locked)
    spec = trainers.get(cell.trainer)
    result = result_from_observations(
        cell.trl, cell.transformers, cell.resolution, obs, trainer=cell.trainer, adapter_required=spec.adapter,
        axes=axes.strings(cell.axes), forced=cell.forced, yanked=cell.yanked, declared=cell.declared,
        released=cell.released, suite=ctx.suite, timings=timings, peak_rss_bytes=peak, lock=locked,
    )
    return _exhausted(ctx, cell, result, obs, timings)


def _exhausted(ctx: Context, cell: Cell, result: CellResult, obs: Mapping[str, Any],
               timings: dict[str, float]) -> CellResult:
    """A failed cell whose suite ran out of memory or disk anywhere (a MemoryError, an allocator's
    failure, ENOSPC) measured the machine, not the pair: an error naming that fault, never cached."""
    if result.status == Status.COMPATIBLE:
        return result
    why = faults.exhausted(json.dumps(obs, default=str))
    if why is None:
        return result
    stage = result.failure.stage if result.failure else Stage.TRAIN
    message = (f"the machine ran out of {'memory' if why == 'memory' else 'disk space'} while the cell ran; "
               f"measured nothing about the pair (the suite said: {result.failure.message if result.failure else 'see the log'})")
    return _result(ctx, cell, Status.ERROR, Failure(stage, message[:600], fault=why), timings=timings,
                   lock=result.lock)


INTERRUPTED = "run interrupted (SIGINT/SIGTERM) while this cell was running; rerun to resume"


def read_cached(path: Path, cell: Cell | None = None) -> CellResult | None:
    """A cached result, or None when it is missing, truncated, corrupt, too deep, not a verdict, or not
    the entry of this key (another pair's result, a copied file): then the cell is rerun."""
    try:
        result = load_cell(path)
    except (ContractError, RecursionError):
        return None
    if cell is not None and (result.id != cell.id or result.cache_key != path.stem):
        return None
    return result if cacheable(result) else None


def cacheable(result: CellResult) -> bool:
    """Harness faults, interrupts and timeouts say nothing certain about the pair: retried next run."""
    return result.status not in (Status.ERROR,) and not (result.failure and result.failure.stage == Stage.TIMEOUT)


def verdict_key(result: CellResult) -> tuple[str, str, str]:
    return str(result.status), str(result.failure.stage) if result.failure else "", result.use_keyword() or ""


def _measure(ctx: Context, cell: Cell, reporter: Reporter, before: CellResult | None) -> CellResult:
    """Run the cell; where a measured verdict existed and this one differs, or the cell was flaky, run
    it once more: two runs that agree replace it, two that disagree are recorded as flaky with both."""
    with ctx.gate.shared():
        result = run_cell(ctx, cell)
    if result.status == Status.ERROR or before is None or before.status == Status.ERROR or ctx.stop.is_set() \
            or (before.status != Status.FLAKY and verdict_key(before) == verdict_key(result)):
        return result
    reporter.rerunning(cell, before, result)
    with ctx.gate.alone():
        again = run_cell(ctx, cell)
    if again.status == Status.ERROR:
        return again
    if verdict_key(again) == verdict_key(result):
        return again
    first, second = outcome(result), outcome(again)
    return replace(again, status=Status.FLAKY, flaky=(first, second),
                   failure=again.failure or result.failure)


def run_all(ctx: Context, cells: list[Cell], jobs: int, reporter: Reporter) -> list[CellResult]:
    """Run cells (cached ones are read back), `jobs` at a time; results in plan order.

    After `ctx.stop` is set, running cells are recorded as interrupted and
    unstarted ones are left out, so a rerun resumes where this one stopped.
    """

    def one(cell: Cell) -> CellResult | None:
        key = cache_key(cell, ctx.settings, ctx.suite, ctx.index)
        cached_path = ctx.cache_dir / f"{key}.json"
        cached = read_cached(cached_path, cell)
        if cached is not None and not ctx.fresh:
            reporter.finished(cell, cached, cached=True)
            write_cell(ctx, cached)
            return cached
        if ctx.stop.is_set():
            return None  # never started: the next run picks it up
        reporter.starting(cell)
        result = replace(_measure(ctx, cell, reporter, cached or ctx.previous.get(cell.id)), cache_key=key)
        # The cache first: a failure writing cells/ (a full disk) must not lose what was measured.
        if cacheable(result) and result.status != Status.FLAKY:
            atomic_write(cached_path, dumps_cell(result))
        elif result.status != Status.ERROR:
            # Measured, but not a verdict to serve again (flaky, a timeout): the older cached verdict it
            # contradicts must not come back on the next run either; that run measures afresh.
            cached_path.unlink(missing_ok=True)
        reporter.finished(cell, result, cached=False)  # said before cells/ is written, which may fail (a full disk)
        write_cell(ctx, result)
        return result

    store = ctx.bytecode or ctx.cache_dir.with_name("bytecode")
    with lock.store(store), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = [r for r in pool.map(one, cells) if r is not None]
    if ctx.bytecode is not None:
        bytecode.prune(ctx.bytecode, int(ctx.settings.bytecode_gib * 2**30))
    return results


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask running cells to stop (and be recorded) instead of killing the host mid-write."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda *_: stop.set())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

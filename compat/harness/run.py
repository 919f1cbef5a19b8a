"""Run cells: resolve -> environment -> in-cell pytest suite -> CellResult.

Each step is a small function; the Reporter observes progress without being
tangled into the logic (resolvelib's reporter split).
"""

from __future__ import annotations

import hashlib
import signal
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import Settings
from .envs import Envs, Step, declared_in_env, declared_in_message, first_error_line, is_network_error
from .lock import shared_env
from .plan import Cell
from .results import CellResult, Failure, read_result, verdict, write_json

# Files whose change must rerun every cell: the in-cell suite and the code it
# imports. Host-only modules (cli, reports, memory, ...) are left out so editing
# them keeps results; findings.json is left out on purpose too: it is generated
# *from* results, and hashing it would invalidate the results it came from.
_SUITE_GLOBS = (
    "tests/cell/**/*.py", "compat/__init__.py", "compat/adapter.py", "compat/formatting.py", "compat/kto_import.py",
    "compat/tiny.py", "compat/cases.py", "compat/templates.py", "compat/examples/*.py", "compat/data/*",
    "compat/harness/export.py", "compat/harness/findings.py", "compat/harness/results.py",
)
_SUITE_EXCLUDE = {"compat/findings.json"}


def suite_hash(root: Path) -> str:
    h = hashlib.sha256()
    files = sorted({p for g in _SUITE_GLOBS for p in root.glob(g) if p.is_file()})
    for p in files:
        rel = p.relative_to(root).as_posix()
        if rel in _SUITE_EXCLUDE or "__pycache__" in rel:
            continue
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_key(cell: Cell, settings: Settings, suite: str) -> str:
    parts = (str(cell.trl), str(cell.transformers), cell.resolution, settings.python, settings.torch, suite,
             "forced" if cell.forced else "", *settings.cell_requirements,
             *(settings.as_of_release_exempt if cell.resolution == "as-of-release" else ()))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


class Reporter:
    """Plain-line progress; subclass to render differently."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total, self.done, self.failed, self.stream = total, 0, 0, stream
        self._lock = threading.Lock()

    def starting(self, cell: Cell) -> None:
        self._line(f"start {cell.id}")

    def finished(self, cell: Cell, result: CellResult, cached: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += result.failed
        how = "cached" if cached else f"{result.seconds:.1f}s"
        stage = f" at {result.failure.stage}" if result.failure else ""
        self._line(f"[{self.done}/{self.total}] {cell.id}: {result.status}{stage} ({how})")

    def _line(self, text: str) -> None:
        with self._lock:
            print(f"compat: {text}", file=self.stream, flush=True)


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


def project_context(config_path: Path, settings: Settings, out: Path, *, fresh: bool = False, jobs: int = 1) -> Context:
    """The run context of the project whose matrix.toml is `config_path`: its checkout holds the
    cell suite, `.compat/` holds environments and cached results."""
    root = config_path.resolve().parent
    envs = Envs(root / ".compat" / "envs", settings)
    envs.check_python()
    return Context(root=root, out=out, settings=settings, envs=envs, cache_dir=root / ".compat" / "results",
                   suite=suite_hash(root), fresh=fresh, threads=max(1, (os.cpu_count() or 1) // jobs))


def _result(cell: Cell, status: str, failure: Failure | None, **kw: Any) -> CellResult:
    return CellResult(str(cell.trl), str(cell.transformers), cell.resolution, status, failure=failure,
                      forced=cell.forced, yanked=cell.yanked, declared=cell.declared, released=cell.released, **kw)


def _cell_env(ctx: Context, result_path: Path, hf_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ctx.root),
        COMPAT_CELL_RESULT=str(result_path),
        HF_HOME=str(hf_home),  # a private, empty hub cache: nothing can come from a warm one
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_DISABLED="true",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    if ctx.threads:
        env["OMP_NUM_THREADS"] = str(ctx.threads)
    env.pop("VIRTUAL_ENV", None)
    return env


INTERRUPTED = "run interrupted (SIGINT/SIGTERM) while this cell was running; rerun to resume"


def run_suite(ctx: Context, cell: Cell, env_dir: Path, log) -> tuple[dict[str, Any] | None, str | None]:
    """The in-cell pytest suite; returns (observations, timeout message)."""
    with tempfile.TemporaryDirectory(prefix=f"compat-{cell.id}-") as tmp:
        result_path = Path(tmp) / "observations.json"
        cmd = [str(env_dir / "bin" / "python"), "-m", "pytest", "tests/cell", "-q", "-rfE", "-p", "no:cacheprovider"]
        proc = subprocess.Popen(cmd, cwd=ctx.root, env=_cell_env(ctx, result_path, Path(tmp) / "hf"),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ctx.settings.cell_timeout
        while proc.poll() is None:
            if ctx.stop.is_set() or time.monotonic() > deadline:
                os.killpg(proc.pid, 9)
                proc.wait()
                if ctx.stop.is_set():
                    return None, INTERRUPTED
                return None, f"cell exceeded its {ctx.settings.cell_timeout:.0f}s time limit and was killed"
            time.sleep(0.2)
        try:
            return json.loads(result_path.read_text()), None
        except (OSError, json.JSONDecodeError):
            return None, None


def run_cell(ctx: Context, cell: Cell) -> CellResult:
    start = time.perf_counter()
    work = ctx.out / "work" / cell.id
    log_path = ctx.out / "logs" / f"{cell.id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        result = _run_steps(ctx, cell, work, log)
    return replace(result, seconds=round(time.perf_counter() - start, 2), log=str(log_path.relative_to(ctx.out)))


def _infra_or_pair(cell: Cell, stage: str, step: Step, pair_status: str) -> CellResult:
    """A network fault is the harness's `error`, never a verdict about the pair."""
    message = first_error_line(step.output)
    status = "error" if is_network_error(step.output) else pair_status
    return _result(cell, status, Failure(stage, message, "uv"), timings={stage: round(step.seconds, 2)})


def _retry(ctx: Context, log, label: str, step):
    """Run a uv step; a network fault is retried with exponential backoff, anything else is final."""
    for attempt in range(ctx.retries + 1):
        outcome = step()
        first: Step = outcome[0]
        log.write(f"$ {label} (attempt {attempt + 1}, {first.seconds:.1f}s)\n{first.output}\n")
        log.flush()
        if first.ok or not is_network_error(first.output) or attempt == ctx.retries or ctx.stop.is_set():
            return outcome
        ctx.stop.wait(ctx.backoff * 2**attempt)
    return outcome


def _run_steps(ctx: Context, cell: Cell, work: Path, log) -> CellResult:
    resolved, lock = _retry(ctx, log, "uv pip compile", lambda: ctx.envs.resolve(cell, work))
    if not resolved.ok:
        refused = _infra_or_pair(cell, "resolve", resolved, "unresolvable")
        return replace(refused, declared=declared_in_message(refused.failure.message) if refused.failure else None)
    with shared_env(ctx.envs.root / cell.id):
        return _in_env(ctx, cell, lock, log, {"resolve": round(resolved.seconds, 2)})


def _in_env(ctx: Context, cell: Cell, lock: Path, log, timings: dict[str, float]) -> CellResult:
    installed, env_dir, reused = _retry(ctx, log, "uv venv + pip sync", lambda: ctx.envs.ensure(cell, lock))
    timings["install"] = round(installed.seconds, 2)
    if not installed.ok:
        return replace(_infra_or_pair(cell, "install", installed, "incompatible"), timings=timings)
    cell = replace(cell, declared=declared_in_env(env_dir))
    suite_start = time.perf_counter()
    obs, timeout = run_suite(ctx, cell, env_dir, log)
    timings["suite"] = round(time.perf_counter() - suite_start, 2)
    if timeout == INTERRUPTED:  # not the pair's fault: an error, never cached, rerun resumes it
        return _result(cell, "error", Failure("interrupted", timeout), timings=timings)
    if timeout:
        return _result(cell, "incompatible", Failure("timeout", timeout), timings=timings)
    if obs is None:
        return _result(cell, "error", Failure("import", "cell suite crashed before writing observations; see log"), timings=timings)
    if obs.get("pytest_exit") in (2, 3, 4, 5) and not obs.get("failures"):
        # interrupted / internal / usage error / no tests: the harness broke, not the pair
        return _result(cell, "error", Failure("import", f"cell suite did not run (pytest exit {obs['pytest_exit']}); see log"), timings=timings)
    status, failure = verdict(obs)
    env = dict(obs.get("environment", {}))
    return _result(
        cell, status, failure,
        environment=env,
        keyword={k: obs.get("keyword", {}).get(k, "untested") for k in ("processing_class", "tokenizer")},
        keyword_raised_by=obs.get("keyword_raised_by", {}),
        import_path=obs.get("import_path"),
        format_mode=obs.get("format_mode"),
        formatter=obs.get("formatter", {}),
        training=obs.get("training"),
        adapter=obs.get("adapter"),
        adapter_outcome=obs.get("adapter_outcome") or ("trained" if obs.get("adapter") == "pass" else None),
        warnings=tuple(obs.get("warnings", ())),
        timings=timings,
    )


def run_all(ctx: Context, cells: list[Cell], jobs: int, reporter: Reporter) -> list[CellResult]:
    """Run cells (cached ones are read back), `jobs` at a time; results in plan order.

    After `ctx.stop` is set, running cells are recorded as interrupted and
    unstarted ones are left out, so a rerun resumes where this one stopped.
    """

    def one(cell: Cell) -> CellResult | None:
        key = cache_key(cell, ctx.settings, ctx.suite)
        cached_path = ctx.cache_dir / f"{key}.json"
        cached = None if ctx.fresh else read_result(cached_path)
        if cached is not None:
            reporter.finished(cell, cached, cached=True)
            write_json(ctx.out / "cells" / f"{cell.id}.json", cached.serialize())
            return cached
        if ctx.stop.is_set():
            return None  # never started: the next run picks it up
        reporter.starting(cell)
        result = replace(run_cell(ctx, cell), cache_key=key)
        write_json(ctx.out / "cells" / f"{cell.id}.json", result.serialize())
        # Harness/network faults and timeouts say nothing certain about the pair: retried next run.
        if result.status != "error" and not (result.failure and result.failure.stage == "timeout"):
            write_json(cached_path, result.serialize())
        reporter.finished(cell, result, cached=False)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [r for r in pool.map(one, cells) if r is not None]


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

"""`python -m compat bench`: the harness's two speed claims, measured side by side in one run.

(a) Setting up one cell's environment the harness way (uv venv + uv pip sync
    of the resolved lock, shared uv cache warm) against the way a plain
    nox + pip session does it (python -m venv + pip install of the same pins,
    pip's cache off, i.e. the cold per-session cost nox+pip users pay).
(b) Rerunning an unchanged matrix (every cell read back from the result
    cache) against running it cold (--fresh; environments are still reused).

Ratios, not absolute seconds, are the point: they carry across machines.
Every external step goes through a `timing.Timer` so the arithmetic and the
printing are testable without installing anything.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .envs import Envs, requirements
from .plan import Cell
from .timing import BenchError, Timer, run_timed

__all__ = ["BenchError", "Figures", "bench", "run_timed"]


@dataclass(frozen=True)
class Figures:
    pair: str
    uv_seconds: float  # uv venv + uv pip sync, warm shared cache
    pip_seconds: float  # python -m venv + pip install --no-cache-dir of the same pins
    cold_seconds: float  # matrix --fresh
    cached_seconds: float  # the same matrix again, all cells from the result cache
    cells: int
    resolve_seconds: float = 0.0  # uv pip compile of the lock both setups install (context only)

    @property
    def setup_ratio(self) -> float:
        """How many times longer pip takes than uv: pip_seconds / uv_seconds."""
        return self.pip_seconds / max(self.uv_seconds, 1e-9)

    @property
    def cache_ratio(self) -> float:
        """Share of a cold run a cached rerun costs: cached_seconds / cold_seconds."""
        return self.cached_seconds / max(self.cold_seconds, 1e-9)

    def render(self) -> str:
        """The pair, then one line per ratio, each under 120 characters (``detail()`` has the seconds)."""
        return "\n".join([
            f"bench {self.pair}",
            f"(a) env setup, one cell: pip/uv = {self.setup_ratio:.1f}x (pip {self.pip_seconds:.1f}s, "
            f"uv {self.uv_seconds:.1f}s; the same pins, uv's cache warm, pip's off)",
            f"(b) matrix of {self.cells} cell(s): cached/cold = {self.cache_ratio:.3f} "
            f"(cached {self.cached_seconds:.1f}s, --fresh {self.cold_seconds:.1f}s)",
        ])

    def detail(self) -> dict[str, object]:
        return {"pair": self.pair, "setup": {"uv_seconds": round(self.uv_seconds, 3),
                                             "pip_seconds": round(self.pip_seconds, 3),
                                             "resolve_seconds": round(self.resolve_seconds, 3),
                                             "pip_over_uv": round(self.setup_ratio, 3)},
                "matrix": {"cells": self.cells, "cold_seconds": round(self.cold_seconds, 3),
                           "cached_seconds": round(self.cached_seconds, 3), "cached_over_cold": round(self.cache_ratio, 4)}}


def pip_pins(lock_text: str, torch: str) -> str:
    """The lock as pip requirements, torch pinned as a user would (`torch==X`, no local label)."""
    lines = []
    for line in lock_text.splitlines():
        if re.match(r"^torch==", line.strip()):
            line = f"torch=={torch}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def setup_times(cell: Cell, settings: Settings, python: str, work: Path, runner: Timer) -> tuple[float, float, float]:
    """(resolve, uv, pip) seconds for one cell's environment, built both ways from one lock."""
    work.mkdir(parents=True, exist_ok=True)
    envs = Envs(work, settings)  # the very commands a cell runs
    req, lock = work / "requirements.in", work / "requirements.txt"
    req.write_text(requirements(cell, settings))
    resolve = runner(envs.compile_cmd(req, lock))
    uv_env = work / "uv-env"
    uv_s = runner(envs.venv_cmd(uv_env))
    uv_s += runner(envs.sync_cmd(uv_env, lock))
    pins = work / "pins.txt"
    pins.write_text(pip_pins(lock.read_text(), settings.torch))
    pip_env = work / "pip-env"
    pip_s = runner([python, "-m", "venv", "--clear", str(pip_env)])
    pip_s += runner([str(pip_env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir",
                     "--disable-pip-version-check", "-r", str(pins)])
    return resolve, uv_s, pip_s


def matrix_times(config: Path, only: Sequence[str], out: Path, runner: Timer) -> tuple[float, float]:
    """(cold, cached) seconds of `python -m compat matrix` on the same cells, through the real CLI."""
    cmd = [sys.executable, "-m", "compat", "matrix", "--config", str(config), "--out", str(out)]
    for pair in only:
        cmd += ["--only", pair]
    root = config.resolve().parent
    cold = runner([*cmd, "--fresh"], cwd=root)
    cached = runner(cmd, cwd=root)
    return cold, cached


def bench(cell: Cell, settings: Settings, config: Path, only: Sequence[str], runner: Timer = run_timed,
          python: str | None = None, work: Path | None = None) -> Figures:
    with tempfile.TemporaryDirectory(prefix="compat-bench-") as tmp:
        base = work or Path(tmp)
        # The interpreter uv builds cells on, found as a matrix run finds it, so both setups use the same Python.
        python = python or Envs(base / "setup", settings).check_python()
        resolve, uv_s, pip_s = setup_times(cell, settings, python, base / "setup", runner)
        cold, cached = matrix_times(config, only, base / "matrix", runner)
    return Figures(cell.only, uv_s, pip_s, cold, cached, len(only), resolve)

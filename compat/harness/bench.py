"""`python -m compat bench`: the harness's two speed claims, measured side by side in one run.

(a) Setting up one cell's environment the harness way (uv venv + uv pip sync
    of the resolved lock, shared uv cache warm) against the way a plain
    nox + pip session does it (python -m venv + pip install of the same pins,
    pip's cache off, i.e. the cold per-session cost nox+pip users pay).
(b) Rerunning an unchanged matrix (every cell read back from the result
    cache) against running it cold (--fresh; environments are still reused).

Ratios, not absolute seconds, are the point: they carry across machines.
Every external step goes through a `Runner` so the arithmetic and the
printing are testable without installing anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .envs import Envs, requirements, uv_bin
from .index import redact
from .plan import Cell

Runner = Callable[[Sequence[str], Path | None], float]


class BenchError(RuntimeError):
    """A benchmarked step failed; the numbers would be meaningless."""


def run_timed(cmd: Sequence[str], cwd: Path | None = None) -> float:
    """Wall seconds of one command; its failure is an error, not a fast result."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0,):
        tail = (proc.stderr + proc.stdout).strip().splitlines()[-5:]
        raise BenchError(redact(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {' | '.join(tail)}"))
    return seconds


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
        return "\n".join([
            f"bench {self.pair}",
            f"(a) env setup, one cell: pip/uv = {self.setup_ratio:.1f}x "
            f"(pip {self.pip_seconds:.1f}s: python -m venv + pip install --no-cache-dir; "
            f"uv {self.uv_seconds:.1f}s: uv venv + uv pip sync, warm cache; lock resolved once in {self.resolve_seconds:.1f}s)",
            f"(b) matrix of {self.cells} cell(s): cached/cold = {self.cache_ratio:.3f} "
            f"(cached rerun {self.cached_seconds:.1f}s; cold --fresh run {self.cold_seconds:.1f}s)",
        ])


def pip_pins(lock_text: str, torch: str) -> str:
    """The lock as pip requirements, torch pinned as a user would (`torch==X`, no local label)."""
    lines = []
    for line in lock_text.splitlines():
        if re.match(r"^torch==", line.strip()):
            line = f"torch=={torch}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def setup_times(cell: Cell, settings: Settings, python: str, work: Path, runner: Runner) -> tuple[float, float, float]:
    """(resolve, uv, pip) seconds for one cell's environment, built both ways from one lock."""
    work.mkdir(parents=True, exist_ok=True)
    envs = Envs(work, settings)  # the very commands a cell runs
    req, lock = work / "requirements.in", work / "requirements.txt"
    req.write_text(requirements(cell, settings))
    resolve = runner(envs.compile_cmd(req, lock), None)
    uv_env = work / "uv-env"
    uv_s = runner(envs.venv_cmd(uv_env), None)
    uv_s += runner(envs.sync_cmd(uv_env, lock), None)
    pins = work / "pins.txt"
    pins.write_text(pip_pins(lock.read_text(), settings.torch))
    pip_env = work / "pip-env"
    pip_s = runner([python, "-m", "venv", "--clear", str(pip_env)], None)
    pip_s += runner([str(pip_env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir",
                     "--disable-pip-version-check", "-r", str(pins)], None)
    return resolve, uv_s, pip_s


def matrix_times(config: Path, only: Sequence[str], out: Path, runner: Runner) -> tuple[float, float]:
    """(cold, cached) seconds of `python -m compat matrix` on the same cells, through the real CLI."""
    cmd = [sys.executable, "-m", "compat", "matrix", "--config", str(config), "--out", str(out)]
    for pair in only:
        cmd += ["--only", pair]
    root = config.resolve().parent
    cold = runner([*cmd, "--fresh"], root)
    cached = runner(cmd, root)
    return cold, cached


def find_python(settings: Settings) -> str:
    """The interpreter uv uses for cells, so both setups build on the same Python."""
    proc = subprocess.run([uv_bin(), "python", "find", settings.python, "--python-preference", "only-system"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise BenchError(f"no Python {settings.python} for the pip side: {proc.stderr.strip()}")
    return proc.stdout.strip()


def bench(cell: Cell, settings: Settings, config: Path, only: Sequence[str], runner: Runner = run_timed,
          python: str | None = None, work: Path | None = None) -> Figures:
    with tempfile.TemporaryDirectory(prefix="compat-bench-") as tmp:
        base = work or Path(tmp)
        resolve, uv_s, pip_s = setup_times(cell, settings, python or find_python(settings), base / "setup", runner)
        cold, cached = matrix_times(config, only, base / "matrix", runner)
    return Figures(cell.only, uv_s, pip_s, cold, cached, len(only), resolve)

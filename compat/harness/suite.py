"""The cell suite as the host sees it: what it is made of (its hash) and how one runs.

A cell's result depends on the suite that measured it, so the suite hash is
part of every cache key and recorded on every cell. It covers whole
directories - the cell-side package, the trainer specs, the shared contract
and probe registry, and tests/cell - never a hand-kept list of files. compat/findings.json is outside on purpose: it is generated *from*
results, and hashing it would invalidate the results it came from.
"""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from compat.contract import fold_observations
from compat.harness import orphans

SUITE_PATHS = ("compat/__init__.py", "compat/contract", "compat/probes.py", "compat/cell", "compat/trainers",
               "tests/cell")


def checkout() -> Path:
    """The kto-compat checkout holding this package and tests/cell (installed editable, as nox does)."""
    import compat
    from compat.harness.envs import EnvError

    root = Path(compat.__file__).resolve().parents[1]
    if not (root / "tests" / "cell").is_dir():
        raise EnvError(f"the cell suite (tests/cell) is not beside the compat package in {root}: run the matrix "
                       "from a kto-compat checkout (pip install -e '.[matrix]')")
    return root


def _files(root: Path) -> list[Path]:
    out: list[Path] = []
    for rel in SUITE_PATHS:
        path = root / rel
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                    and p.suffix not in (".pyc", ".pyo")]
    return sorted(out)


def suite_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in _files(root):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _exit_handle(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux pidfd), or None: then poll."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class SuiteRun:
    """What the suite process left: its folded observations (None if it wrote nothing), how it ended."""

    observations: dict[str, Any] | None
    returncode: int | None  # None: killed by the harness (timeout or stop)
    seconds: float
    killed: str | None = None  # "timeout" | "stop"
    peak_rss_bytes: int | None = None  # the suite process's own high-water mark (wait4's rusage)


def environment(root: Path, result: Path, hf_home: Path, trainer: str, threads: int,
                overlay: Sequence[Path] = ()) -> dict[str, str]:
    """The suite's environment variables; ``overlay``: directories of packages that come before the
    interpreter's own (the GPU check installs a pair over a machine's image that way)."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([*map(str, overlay), str(root)]),
        COMPAT_CELL_RESULT=str(result),
        COMPAT_TRAINER=trainer,
        HF_HOME=str(hf_home),  # a private, empty hub cache: nothing can come from a warm one
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_DISABLED="true",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        # Cells need no third-party pytest plugins; environments pull some in (anyio) and each costs start-up.
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    # The cell writes bytecode (the host shares it between environments: harness/bytecode.py).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run(root: Path, env_dir: Path, trainer: str, workdir: Path, log: TextIO, timeout: float, threads: int,
        should_stop: Any, running: Path | None = None, python: str | None = None,
        overlay: Sequence[Path] = ()) -> SuiteRun:
    """``pytest tests/cell/<trainer>`` in the cell's environment (``python``: another interpreter, as
    `check --run` uses its own), killed on timeout or when asked to stop. It dies with the harness;
    ``running`` records its session for the next run to end if it does not."""
    workdir.mkdir(parents=True, exist_ok=True)
    result = workdir / "observations.jsonl"
    result.unlink(missing_ok=True)
    cmd = [python or str(env_dir / "bin" / "python"), "-m", "pytest", f"tests/cell/{trainer}", "-q", "-rfE",
           "-p", "no:cacheprovider"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=environment(root, result, workdir / "hf", trainer, threads, overlay),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=orphans.die_with_parent)
    deadline = time.monotonic() + timeout
    killed, returncode, peak = None, None, None
    exited = _exit_handle(proc.pid)
    recorded = None
    try:
        recorded = orphans.record(running, proc.pid) if running is not None else None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # wait4: the exit status and this child's rusage
            if pid:
                returncode, peak = os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024
                proc.returncode = returncode
                break
            if should_stop() or time.monotonic() > deadline:
                killed = "stop" if should_stop() else "timeout"
                os.killpg(proc.pid, 9)
                proc.wait()
                break
            # Stops and deadlines are checked every 50 ms; the exit itself wakes the loop at once.
            if exited is None:
                time.sleep(0.05)
            else:
                select.select([exited], [], [], 0.05)
    finally:
        if exited is not None:
            os.close(exited)
        if recorded is not None:
            recorded.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    try:
        text = result.read_text(encoding="utf-8")
    except OSError:
        return SuiteRun(None, returncode, seconds, killed, peak)
    return SuiteRun(fold_observations(text.splitlines()), returncode, seconds, killed, peak)

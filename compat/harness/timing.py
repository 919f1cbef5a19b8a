"""The one way the bench times a command: wall seconds, and a failed command is an error, never a fast result."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from compat.contract import CompatError
from compat.harness.index import redact


class BenchError(CompatError):
    """A benchmarked step failed, or a cell did not train: a ratio would be meaningless."""


class Timer(Protocol):
    """What the bench times every command with: ``run_timed``, or a fake in the tests."""

    def __call__(self, cmd: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> float: ...


def run_timed(cmd: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=None if env is None else dict(env))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr + proc.stdout).strip().splitlines()[-5:]
        # A command line or its output may hold an index URL with a password: redacted like every uv step's.
        raise BenchError(redact(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}): {' | '.join(tail)[-500:]}"))
    return seconds

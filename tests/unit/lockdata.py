"""Fake locks for unit tests: `uv pip compile`-shaped text built from a cell's recorded environment plus
distributions the stack does not use at run time (as real locks hold: tzdata, urllib3, the suite's pytest)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from compat.contract import CellResult
from compat.harness import locks

ELSEWHERE = {"tzdata": "2026.6", "urllib3": "2.8.0", "pytest": "8.4.2"}
HUB = {"huggingface-hub": "0.36.2"}  # in a real lock, reached from transformers' requirements


def lock_text(env: dict[str, str]) -> str:
    pins = {**{k: v for k, v in env.items() if k != "python"}, **ELSEWHERE, **HUB}
    return "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def locked(cell: CellResult) -> CellResult:
    """The cell naming the lock of what it recorded (a cell that installed nothing has none)."""
    return replace(cell, lock=locks.lock_id(lock_text(cell.environment))) if cell.environment else cell


def write_locks(directory: Path, cells: Iterable[CellResult]) -> None:
    for c in cells:
        if c.lock:
            (directory / "locks").mkdir(parents=True, exist_ok=True)
            (directory / "locks" / f"{c.lock}.txt").write_text(lock_text(c.environment))

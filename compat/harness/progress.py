"""Progress for long matrices: done/total, running cells, failures so far and an ETA.

A Reporter subclass, so run_all stays ignorant of how progress is shown. On a
terminal one status line is redrawn in place; in CI logs (not a TTY) every
event is a plain line that also carries the running set and the ETA, because
a log cannot be redrawn and someone reading it later wants the same facts.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from compat.contract import CellResult

from .plan import Cell
from .run import Reporter, said


def eta_seconds(durations: list[float], remaining: int, jobs: int) -> float | None:
    """Mean seconds of the cells that really ran x cells left / cells at once; None before any ran.

    Cached cells are left out of the mean: they take milliseconds and would
    make a cold run look almost done.
    """
    if not durations:
        return None
    return sum(durations) / len(durations) * remaining / max(1, jobs)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressReporter(Reporter):
    """Tracks running cells and real cell durations on top of the plain Reporter's counts."""

    def __init__(self, total: int, jobs: int, stream: TextIO = sys.stderr, tty: bool | None = None) -> None:
        super().__init__(total, stream)
        self.jobs = jobs
        self.tty = stream.isatty() if tty is None else tty
        self.running: dict[str, float] = {}
        self.durations: list[float] = []
        self._drawn = False

    def status(self) -> str:
        eta = eta_seconds(self.durations, self.total - self.done, self.jobs)
        running = ", ".join(sorted(self.running)) or "-"
        return (f"{self.done}/{self.total} done, {self.tally()}, running: {running}, "
                f"ETA {fmt_duration(eta if self.done < self.total else 0)}")

    def starting(self, cell: Cell) -> None:
        with self._lock:
            self.running[cell.id] = time.monotonic()
        if self.tty:
            self._redraw()
        else:
            self._line(f"start {cell.id} ({self.status()})")

    def finished(self, cell: Cell, result: CellResult, cached: bool) -> None:
        self.count(result)
        with self._lock:
            self.running.pop(cell.id, None)
            if not cached:
                self.durations.append(result.seconds)
        how = "cached" if cached else f"{result.seconds:.1f}s"
        self._line(f"[{self.done}/{self.total}] {cell.id}: {said(result)} ({how})"
                   + ("" if self.tty else f"; {self.status()}"))
        if self.tty:
            self._redraw()

    def _line(self, text: str) -> None:
        with self._lock:
            prefix = "\r\x1b[K" if self.tty and self._drawn else ""
            print(f"{prefix}compat: {text}", file=self.stream, flush=True)
            self._drawn = False

    def _redraw(self) -> None:
        with self._lock:
            print(f"\r\x1b[Kcompat: {self.status()}", end="", file=self.stream, flush=True)
            self._drawn = True

    def close(self) -> None:
        """Leave the terminal on a fresh line after the last redraw."""
        with self._lock:
            if self.tty and self._drawn:
                print("\r\x1b[K", end="", file=self.stream, flush=True)
                self._drawn = False


def make(total: int, jobs: int, stream: TextIO = sys.stderr) -> ProgressReporter:
    return ProgressReporter(total, jobs, stream)

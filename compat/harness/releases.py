"""Which releases the stored results do not cover yet: the input of the daily CI run.

A profile's selectors ("latest", "<1", "0.15.*") pick different versions as
the index grows. Comparing what they pick today with what a stored report
already measured gives exactly the cells to run, so CI spends minutes on new
releases instead of hours re-running the whole matrix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from compat.contract import CellResult, Status

from . import axes
from .config import ConfigError
from .plan import Cell


@dataclass(frozen=True)
class Uncovered:
    """Planned cells the stored results lack, and per axis the versions no stored cell mentions."""

    cells: tuple[Cell, ...]
    new: tuple[tuple[str, tuple[Version, ...]], ...]  # (axis, versions), trl and transformers first


def uncovered(planned: Sequence[Cell], results: Sequence[CellResult]) -> Uncovered:
    """A harness `error` says nothing about the pair, so such a cell counts as not covered; nor does a
    `flaky` one (two runs disagreed, e.g. two shards): the next run measures it again."""
    covered = {r.key for r in results if r.status not in (Status.ERROR, Status.FLAKY)}
    cells = tuple(c for c in planned if _key(c) not in covered)
    seen = {(name, v) for r in results for name, v in r.all_axes.items()}
    names = dict.fromkeys(name for c in planned for name in c.all_axes)
    new = tuple((name, tuple(sorted({c.all_axes[name] for c in planned if name in c.all_axes} - {v for n, v in seen if n == name})))
                for name in names)
    return Uncovered(cells, new)


def _key(cell: Cell) -> tuple[object, ...]:
    """A planned cell's identity as ``CellResult.key`` spells it."""
    return CellResult(cell.trl, cell.transformers, cell.resolution, Status.ERROR, trainer=cell.trainer,
                      forced=cell.forced, axes=axes.strings(cell.axes)).key


@dataclass(frozen=True)
class ShardPlan:
    """How to split cells across CI runners so each shard's cells take about ``minutes``."""

    cells: tuple[str, ...]  # --only values
    shards: int
    seconds_per_cell: float  # measured cold: the worst recent shard's mean cell time (or the default)

    def github_output(self) -> str:
        return "\n".join([f"count={len(self.cells)}", f"only={' '.join(self.cells)}",
                          f"shards={json.dumps(list(range(1, self.shards + 1)))}", f"total={self.shards}",
                          f"seconds_per_cell={self.seconds_per_cell:.1f}"]) + "\n"


DEFAULT_SECONDS = 30.0  # before a runner measured any: a cold cell on a slow runner took 9-35 s
COLD_KEY = "cold_seconds"  # compat.json metadata: the worst mean cell time of the last CI run's shards


def cold_seconds(shards: Sequence[Sequence[CellResult]]) -> float | None:
    """The worst shard's mean cell time. A CI shard starts on a fresh runner with no environment and
    no cache, so every cell it measured paid the cold setup; cells that only erred are left out."""
    means = [sum(t) / len(t) for t in ([r.seconds for r in cells if r.status != Status.ERROR and r.seconds > 0]
                                       for cells in shards) if t]
    return round(max(means), 1) if means else None


def shard_plan(cells: Sequence[str], meta: Mapping[str, Any], minutes: float, max_shards: int) -> ShardPlan:
    """Shards from the per-cell time measured cold on the runners (``meta[COLD_KEY]``), never from the
    stored cells' own times: those come from a warm machine reusing environments and read 3-7x short."""
    try:
        per_cell = max(float(meta[COLD_KEY]), 1.0) if COLD_KEY in meta else DEFAULT_SECONDS
    except (TypeError, ValueError):
        raise ConfigError(f"compat.json: {COLD_KEY} {meta[COLD_KEY]!r} is not a number of seconds") from None
    per_shard = max(1, int(minutes * 60 // per_cell))
    shards = min(max_shards, math.ceil(len(cells) / per_shard)) if cells else 0
    return ShardPlan(tuple(cells), shards, per_cell)


def render(found: Uncovered, report: Path, profile: str) -> str:
    """Human summary: new versions per axis, then the cells to run."""
    lines = [f"{len(found.cells)} cell(s) of profile {profile!r} not covered by {report}"]
    for axis, versions in found.new:
        lines.append(f"new {axis}: {', '.join(map(str, versions)) or '-'}")
    lines += [f"  {c.id}" for c in found.cells]
    return "\n".join(lines)

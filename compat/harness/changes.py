"""What a run changed in the published table: the pull request's body and the job's step summary.

A run's news is the new releases and their cells by status, the regressions and
fixes they bring, the cells that ended in a harness error (retried next run) and
where each failing cell's log is. Only a measured verdict is a change: a table
whose only differences are `error` cells, dates or timings is not proposed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from packaging.version import Version

from compat.contract import CellResult, Status
from compat.harness import regressions
from compat.harness.documents import outcome
from compat.harness.reports.vocab import first_line, md

STATUSES = (Status.COMPATIBLE, Status.INCOMPATIBLE, Status.UNRESOLVABLE, Status.FLAKY, Status.ERROR)


def _measured(cells: Sequence[CellResult]) -> dict[tuple[object, ...], CellResult]:
    """Keyed by parsed versions, as merge and regressions key them: 1.0 and 1.0.0 are one cell."""
    return {c.key: c for c in cells if c.status != Status.ERROR}


def _same(a: CellResult, b: CellResult) -> bool:
    """Same verdict: equal but for run details (cheap), else equal outcomes (`outcome` copies the whole cell)."""
    run: dict[str, Any] = {"seconds": 0.0, "timings": {}, "peak_rss_bytes": None, "cache_key": "", "log": None}
    return replace(a, **run) == replace(b, **run) or outcome(a) == outcome(b)


@dataclass(frozen=True)
class Changes:
    old: tuple[CellResult, ...]
    new: tuple[CellResult, ...]

    @cached_property
    def differing(self) -> frozenset[tuple[object, ...]]:
        """Cells (keys) whose measured verdict appeared, changed or went away (errors and times do not count).
        Equal cells are equal verdicts; only cells that differ somewhere have their outcomes compared."""
        before, after = _measured(self.old), _measured(self.new)
        return frozenset(before.keys() ^ after.keys()) | {
            i for i in before.keys() & after.keys() if not _same(before[i], after[i])}

    @property
    def changed(self) -> bool:
        return bool(self.differing)

    @cached_property
    def added(self) -> list[CellResult]:
        """Cells of the new table whose verdict is new or different (error cells included: they are news)."""
        return [c for c in self.new if c.status == Status.ERROR or c.key in self.differing]

    @cached_property
    def releases(self) -> dict[str, list[Version]]:
        """Per axis, the versions the new table measures and the old one did not."""
        names = dict.fromkeys(a for c in (*self.old, *self.new) for a in c.all_axes)  # trl, transformers, further
        out = {}
        for axis in names:
            seen = {c.all_axes[axis] for c in self.old if c.status != Status.ERROR and axis in c.all_axes}
            out[axis] = sorted({c.all_axes[axis] for c in self.new if axis in c.all_axes} - seen)
        return out

    @cached_property
    def steps(self) -> list[regressions.Step]:
        return regressions.find(self.old, self.new)


def _counts(cells: Sequence[CellResult]) -> str:
    counts = Counter(c.status for c in cells)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) or "none"


def _log(cell: CellResult, links: str) -> str:
    return f"[log]({links.rstrip('/')}/{cell.log})" if cell.log and links else ""


def body(changes: Changes, links: str = "", max_rows: int = 30) -> str:
    """Markdown for the pull request and the step summary: short whatever the table's size."""
    added = changes.added
    lines = ["## kto-compat: what this run measured", ""]
    for axis, versions in changes.releases.items():
        for v in versions:
            cells = [c for c in added if c.all_axes.get(axis) == v]
            lines.append(f"- new {axis} {md(v)}: {len(cells)} cell(s): {_counts(cells)}")
    others = [c for c in added if all(c.all_axes.get(a) not in vs for a, vs in changes.releases.items())]
    if others:
        lines.append(f"- cells of releases measured before: {len(others)}: {_counts(others)}")
    if not added:
        lines.append("- nothing new was measured")
    lines.append("")
    text = regressions.markdown(changes.steps)
    lines += [text] if text else ["No regression and no fix.", ""]
    errors = [c for c in added if c.status == Status.ERROR]
    if errors:
        lines += [f"## {len(errors)} harness error(s), retried by the next run", "",
                  "| cell | message | log |", "|---|---|---|"]
        lines += [f"| {md(c.id)} | {md(first_line(c.failure.message)) if c.failure else ''} | {_log(c, links)} |"
                  for c in errors[:max_rows]]
        lines += [f"\n... and {len(errors) - max_rows} more" if len(errors) > max_rows else "", ""]
    failing = [c for c in added if c.status in (*regressions.BROKEN, Status.FLAKY) and c.log]
    if failing and links:
        lines += ["## Logs of the new failing cells", ""]
        lines += [f"- {md(c.id)}: {md(c.status)}, {_log(c, links)}" for c in failing[:max_rows]]
        lines += [f"- ... and {len(failing) - max_rows} more" if len(failing) > max_rows else "", ""]
    return "\n".join(lines).rstrip() + "\n"

"""Pairs that were compatible in an old report and are not in a new one.

The daily CI run opens (or updates) one issue from this list. A pair that
now ends in the harness's own `error` is left out: a network fault is not a
regression, and it is retried on the next run anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from compat.contract import CellResult, Status
from compat.harness.reports.vocab import first_line, md


@dataclass(frozen=True)
class Regression:
    old: CellResult
    new: CellResult


def find(old: Sequence[CellResult], new: Sequence[CellResult]) -> list[Regression]:
    # Matched by parsed versions: a report spelling 1.0 and another 1.0.0 describe one cell.
    before = {r.key: r for r in old if r.status == Status.COMPATIBLE}
    found = [Regression(before[r.key], r) for r in new
             if r.key in before and r.status in (Status.INCOMPATIBLE, Status.UNRESOLVABLE)]
    return sorted(found, key=lambda g: (g.new.key, g.new.id))


def markdown(found: Sequence[Regression]) -> str:
    """A Markdown table for an issue body; every cell-derived string escaped."""
    if not found:
        return ""
    lines = [f"## {len(found)} pair(s) regressed: compatible before, not now", "",
             "| pair | resolution | was | now | stage | raised by | first line of the error |",
             "|---|---|---|---|---|---|---|"]
    for g in found:
        f = g.new.failure
        message = first_line(f.message) if f else ""
        lines.append(
            f"| trl {md(g.new.trl)} + transformers {md(g.new.transformers)} | "
            f"{md(g.new.resolution)} | {md(g.old.status)} ({md(g.old.use_keyword() or '')}) | "
            f"{md(g.new.status)} | {md(f.stage) if f else ''} | "
            f"{md(f.raised_by or '') if f else ''} | {md(message)} |")
    return "\n".join(lines) + "\n"

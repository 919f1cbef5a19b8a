"""Pairs that were compatible in an old report and are not in a new one.

The daily CI run opens (or updates) one issue from this list. A pair that
now ends in the harness's own `error` is left out: a network fault is not a
regression, and it is retried on the next run anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.version import Version

from .report import md_escape
from .results import CellResult


@dataclass(frozen=True)
class Regression:
    old: CellResult
    new: CellResult


def find(old: Sequence[CellResult], new: Sequence[CellResult]) -> list[Regression]:
    before = {r.id: r for r in old if r.status == "compatible"}
    found = [Regression(before[r.id], r) for r in new
             if r.id in before and r.status in ("incompatible", "unresolvable")]
    return sorted(found, key=lambda g: (Version(g.new.trl), Version(g.new.transformers), g.new.id))


def markdown(found: Sequence[Regression]) -> str:
    """A Markdown table for an issue body; every cell-derived string escaped."""
    if not found:
        return ""
    lines = [f"## {len(found)} pair(s) regressed: compatible before, not now", "",
             "| pair | resolution | was | now | stage | raised by | first line of the error |",
             "|---|---|---|---|---|---|---|"]
    for g in found:
        f = g.new.failure
        message = (f.message or "").splitlines()[0] if f and f.message else ""
        lines.append(
            f"| trl {md_escape(g.new.trl)} + transformers {md_escape(g.new.transformers)} | "
            f"{md_escape(g.new.resolution)} | {md_escape(g.old.status)} ({md_escape(g.old.use_keyword() or '')}) | "
            f"{md_escape(g.new.status)} | {md_escape(f.stage) if f else ''} | "
            f"{md_escape(f.raised_by or '') if f else ''} | {md_escape(message)} |")
    return "\n".join(lines) + "\n"

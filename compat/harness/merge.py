"""Merge result directories (CI shards, or a stored report plus new shards) into one report.

A sharded matrix writes one results directory per shard; the published table
must be the same as if one machine had run every cell. Duplicates are allowed
only when they say the same thing about the pair: two shards disagreeing on a
cell is a real conflict (flaky pair, different hardware) that a silent
"last one wins" would hide. A harness `error` never replaces a measured
verdict, from a shard or from the base. Every input is validated against the
contract before anything is written, and file names come from the parsed
cells (versions), never from text in the input.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compat.contract import CellResult, ContractError, Status, outcome
from compat.harness.documents import load_cell, load_document
from compat.harness.config import ConfigError

# Run metadata that differs between machines and runs; merged, not compared.
_VOLATILE_META = ("generated", "rendered", "platform", "suite")


@dataclass(frozen=True)
class Source:
    """One results directory: its cells and the metadata of its compat.json."""

    path: Path
    cells: tuple[CellResult, ...]
    meta: dict[str, Any]


def read_dir(path: Path) -> Source:
    """Cells from DIR/compat.json (the contract), or DIR/cells/*.json when it is absent."""
    if not path.is_dir():
        raise ConfigError(f"{path}: not a results directory")
    report = path / "compat.json"
    if report.exists():
        try:
            doc = load_document(report)
        except ContractError as exc:
            raise ConfigError(str(exc)) from None
        return Source(path, doc.cells, doc.meta)
    cells, bad = [], 0
    for p in sorted((path / "cells").glob("*.json")):
        try:
            cells.append(load_cell(p))
        except ContractError:
            bad += 1
    if not cells:
        raise ConfigError(f"{path}: no compat.json and no readable cells/*.json"
                          + (f" ({bad} unreadable or invalid)" if bad else ""))
    return Source(path, tuple(cells), {})


def _conflict(a: CellResult, b: CellResult) -> str:
    left, right = outcome(a), outcome(b)
    k = next(k for k in left if left[k] != right[k])
    return f"{k}: {json.dumps(left[k], sort_keys=True)[:120]} vs {json.dumps(right[k], sort_keys=True)[:120]}"


def merge_cells(sources: Sequence[Source], base: Source | None = None) -> list[CellResult]:
    """Union of the sources' cells; `base` cells are replaced by any source's newer *measured* result.

    Raises ConfigError naming the cell when two sources disagree about it.
    """
    # Keyed by parsed versions: 1.0 and 1.0.0 are one cell (PEP 440), whatever the inputs spelled.
    merged: dict[tuple[object, ...], tuple[CellResult, Path]] = {}
    for src in sources:
        for cell in src.cells:
            seen = merged.get(cell.key)
            if seen is not None and Status.ERROR not in (seen[0].status, cell.status) \
                    and outcome(seen[0]) != outcome(cell):
                raise ConfigError(f"conflicting results for cell {cell.id}: {seen[1]} and {src.path} differ "
                                  f"({_conflict(seen[0], cell)})")
            if seen is None or seen[0].status == Status.ERROR:
                merged[cell.key] = (cell, src.path)
    if base is not None:
        for cell in base.cells:
            seen = merged.get(cell.key)
            # A fault in a new run says nothing about the pair: the measured base verdict stays.
            if seen is None or (seen[0].status == Status.ERROR and cell.status != Status.ERROR):
                merged[cell.key] = (cell, base.path)
    return [c for c, _ in merged.values()]


def merge_meta(sources: Sequence[Source]) -> dict[str, Any]:
    """Keys all sources agree on are kept; disagreeing ones list every value. `generated` is the newest."""
    keys = sorted({k for s in sources for k in s.meta if k not in _VOLATILE_META})
    meta: dict[str, Any] = {}
    for k in keys:
        present = [s.meta[k] for s in sources if k in s.meta]
        values = sorted({str(v) for v in present})
        meta[k] = present[0] if len(values) == 1 else ", ".join(values)
    for k in ("platform", "suite"):
        values = sorted({str(s.meta[k]) for s in sources if k in s.meta})
        if values:
            meta[k] = "; ".join(values) if k == "platform" else ", ".join(values)
    generated = sorted(str(s.meta["generated"]) for s in sources if "generated" in s.meta)
    if generated:
        meta["generated"] = generated[-1]
    return meta


def copy_logs(sources: Sequence[Source], out: Path, cells: Sequence[CellResult]) -> None:
    """Bring each cell's log along so the merged report's `log` paths still resolve. The path is
    derived from the cell's id (parsed versions), never taken from the input's `log` text."""
    wanted = {c.id for c in cells}
    for src in sources:
        if src.path.resolve() == out.resolve():
            continue
        for cell in src.cells:
            if cell.id not in wanted:
                continue
            name = f"logs/{cell.id}.log"
            source, target = src.path / name, out / name
            # A symlinked log is not copied: following it would publish whatever file it points at.
            if source.is_file() and not source.is_symlink() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

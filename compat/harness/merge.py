"""Merge result directories (CI shards, or a stored report plus new shards) into one report.

A sharded matrix writes one results directory per shard; the published table
must be the same as if one machine had run every cell. Duplicates are allowed
only when they say the same thing about the pair: two shards disagreeing on a
cell is a real conflict (flaky pair, different hardware) that a silent
"last one wins" would hide.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError
from .results import CellResult, read_result

# What a cell observed about the pair. Timings, logs and cache keys differ
# between any two runs and never make duplicates conflict.
OUTCOME = ("status", "failure", "keyword", "keyword_raised_by", "import_path", "format_mode",
           "formatter", "adapter", "environment")
# Run metadata that differs between machines and runs; merged, not compared.
_VOLATILE_META = ("generated", "platform")


@dataclass(frozen=True)
class Source:
    """One results directory: its cells and the metadata of its compat.json."""

    path: Path
    cells: tuple[CellResult, ...]
    meta: dict[str, Any]


def read_dir(path: Path) -> Source:
    """Cells from DIR/compat.json (the contract), or DIR/cells/*.json when it is absent."""
    report = path / "compat.json"
    if report.exists():
        try:
            data = json.loads(report.read_text())
            cells = tuple(CellResult.from_dict(c) for c in data["cells"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{report}: not a compat.json report: {exc}") from None
        meta = {k: v for k, v in data.items() if k not in ("cells", "schema_version")}
        return Source(path, cells, meta)
    found = [read_result(p) for p in sorted((path / "cells").glob("*.json"))]
    if not found:
        raise ConfigError(f"{path}: no compat.json and no readable cells/*.json")
    return Source(path, tuple(r for r in found if r is not None), {})


def outcome(cell: CellResult) -> dict[str, Any]:
    data = cell.serialize()
    return {k: data.get(k) for k in OUTCOME}


def _conflict(a: CellResult, b: CellResult) -> str:
    left, right = outcome(a), outcome(b)
    diff = [k for k in OUTCOME if left[k] != right[k]]
    k = diff[0]
    return f"{k}: {json.dumps(left[k], sort_keys=True)[:120]} vs {json.dumps(right[k], sort_keys=True)[:120]}"


def merge_cells(sources: Sequence[Source], base: Source | None = None) -> list[CellResult]:
    """Union of the sources' cells; `base` cells are replaced by any source's newer result.

    Raises ConfigError naming the cell when two sources disagree about it.
    """
    merged: dict[str, tuple[CellResult, Path]] = {}
    for src in sources:
        for cell in src.cells:
            seen = merged.get(cell.id)
            if seen is not None and outcome(seen[0]) != outcome(cell):
                raise ConfigError(f"conflicting results for cell {cell.id}: {seen[1]} and {src.path} differ "
                                  f"({_conflict(seen[0], cell)})")
            merged.setdefault(cell.id, (cell, src.path))
    if base is not None:
        for cell in base.cells:
            merged.setdefault(cell.id, (cell, base.path))
    return [c for c, _ in merged.values()]


def merge_meta(sources: Sequence[Source]) -> dict[str, Any]:
    """Keys all sources agree on are kept; disagreeing ones list every value (e.g. two suites)."""
    keys = sorted({k for s in sources for k in s.meta if k not in _VOLATILE_META})
    meta: dict[str, Any] = {}
    for k in keys:
        present = [s.meta[k] for s in sources if k in s.meta]
        values = sorted({str(v) for v in present})
        meta[k] = present[0] if len(values) == 1 else ", ".join(values)
    platforms = sorted({str(s.meta["platform"]) for s in sources if "platform" in s.meta})
    if platforms:
        meta["platform"] = "; ".join(platforms)
    return meta


def copy_logs(sources: Sequence[Source], out: Path, cells: Sequence[CellResult]) -> None:
    """Bring each cell's log along so the merged report's `log` paths still resolve."""
    for src in sources:
        if src.path.resolve() == out.resolve():
            continue
        for cell in cells:
            if cell.log and (src.path / cell.log).is_file() and not (out / cell.log).exists():
                (out / cell.log).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src.path / cell.log, out / cell.log)

"""Merge result directories (CI shards, or a stored report plus new shards) into one report.

A sharded matrix writes one results directory per shard; the published table
must be the same as if one machine had run every cell, whatever order the
shards come in. Duplicates that say the same thing about the pair fold into
one; duplicates that disagree become one `flaky` cell keeping every outcome
(as a rerun within one run does), so the next run measures it again instead
of the whole publish stopping. A harness `error` never replaces a measured
verdict, from a shard or from the base. Metadata merges as sets, and a
source whose cells all erred adds none: it measured nothing. Every input is validated against the
contract before anything is written, and file names come from the parsed
cells (versions), never from text in the input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from compat.contract import CellResult, Status
from compat.harness.documents import Source, dumps_cell, outcome  # Source: what load_results reads

# Per-run metadata that is not a set of labels: recomputed from the cells (or dropped), never unioned.
_DERIVED_META = ("generated", "rendered", "measured", "cold_seconds")
# Values that themselves hold ", " (hardware: "cpu (x86_64, 2 cores, ...)") are joined with "; ".
_SEPARATOR = {"platform": "; ", "hardware": "; "}


def _text(data: Any) -> str:
    return json.dumps(data, sort_keys=True)


def _outcomes(cell: CellResult) -> list[dict[str, Any]]:
    """What a result says about its pair: a flaky cell says each of its runs' outcomes."""
    return [dict(o) for o in cell.flaky] if cell.status == Status.FLAKY and cell.flaky else [outcome(cell)]


def fold(results: Iterable[CellResult]) -> CellResult:
    """One cell from several results of it, independent of their order: measured beats `error`;
    agreeing results fold into one; disagreeing ones become `flaky` with every distinct outcome."""
    ordered = list(results)
    if len(ordered) == 1:
        return ordered[0]
    ordered.sort(key=dumps_cell)  # a canonical order: the input order never shows
    measured = [r for r in ordered if r.status != Status.ERROR] or ordered
    seen = {_text(o): o for r in measured for o in _outcomes(r)}
    if len(seen) == 1 and measured[0].status != Status.FLAKY:
        return measured[0]
    first = next((r for r in measured if r.failure is not None), measured[0])
    return replace(first, status=Status.FLAKY, flaky=tuple(seen[k] for k in sorted(seen)))


def merge_cells(sources: Sequence[Source], base: Source | None = None) -> list[CellResult]:
    """Union of the sources' cells, duplicates folded (see ``fold``); `base` cells are replaced by any
    source's *measured* result. Sorted by cell, so the output never depends on the input order."""
    # Keyed by parsed versions: 1.0 and 1.0.0 are one cell (PEP 440), whatever the inputs spelled.
    found: dict[tuple[object, ...], list[CellResult]] = {}
    for src in sources:
        for cell in src.cells:
            found.setdefault(cell.key, []).append(cell)
    merged = {key: fold(cells) for key, cells in found.items()}
    if base is not None:
        for cell in base.cells:
            seen = merged.get(cell.key)
            # A fault in a new run says nothing about the pair: the measured base verdict stays.
            if seen is None or (seen.status == Status.ERROR and cell.status != Status.ERROR):
                merged[cell.key] = cell
    return sorted(merged.values(), key=lambda c: (c.key, c.id))


def _dates(src: Source) -> dict[str, str]:
    """When each measured cell of a source was measured: its own `measured` map, else the run's date."""
    own = src.meta.get("measured")
    fallback = str(src.meta.get("generated", ""))
    return {c.id: str(own.get(c.id, fallback)) if isinstance(own, dict) else fallback
            for c in src.cells if c.status != Status.ERROR}


def measured_dates(sources: Sequence[Source], base: Source | None, cells: Sequence[CellResult]) -> dict[str, str]:
    """Per merged cell, when it was measured: the newest source that measured it; a base cell kept
    as it was keeps its date. Cells that only erred have none (nothing was measured)."""
    new: dict[str, str] = {}
    for src in sources:
        for cid, date in _dates(src).items():
            new[cid] = max(new.get(cid, ""), date)
    old = _dates(base) if base is not None else {}
    by_id = {c.id: c for c in cells}
    base_cells = {c.id: c for c in base.cells} if base is not None else {}
    out = {}
    for cid, cell in sorted(by_id.items()):
        if cell.status == Status.ERROR:
            continue
        kept = cid in base_cells and base_cells[cid] == cell
        date = old.get(cid, "") if kept or cid not in new else new[cid]
        if date:
            out[cid] = date
    return out


def _parts(key: str, value: Any) -> set[str]:
    if key == "profile":  # profile names are words: "default, dpo" and "default dpo" are one set
        return set(re.split(r"[,\s]+", str(value))) - {""}
    return {p.strip() for p in str(value).split(_SEPARATOR.get(key, ", ")) if p.strip()}


def merge_meta(sources: Sequence[Source], measured: dict[str, str] | None = None) -> dict[str, Any]:
    """Every label as a set: values all sources agree on are kept as they are, differing ones are
    listed once each, sorted (merging A with A+B gives A+B, never A+A+B). A source whose cells all
    erred measured nothing and adds nothing. `generated` is the newest measured cell's date."""
    counted = [s for s in sources if not s.cells or any(c.status != Status.ERROR for c in s.cells)]
    keys = sorted({k for s in counted for k in s.meta if k not in _DERIVED_META})
    meta: dict[str, Any] = {}
    for k in keys:
        present = [s.meta[k] for s in counted if k in s.meta]
        values = sorted(set().union(*(_parts(k, v) for v in present)))
        meta[k] = present[0] if len({str(v) for v in present}) == 1 else _SEPARATOR.get(k, ", ").join(values)
    if measured:
        meta["measured"] = dict(sorted(measured.items()))
        meta["generated"] = max(measured.values())
    else:
        generated = sorted(str(s.meta["generated"]) for s in counted if "generated" in s.meta)
        if generated:
            meta["generated"] = generated[-1]
    return meta


def label_union(key: str, *values: Any) -> str:
    """Labels from several places as one sorted set ("default, dpo" + "full dpo" -> "default, dpo, full")."""
    parts = set().union(*(_parts(key, v) for v in values if v))
    return _SEPARATOR.get(key, ", ").join(sorted(parts))

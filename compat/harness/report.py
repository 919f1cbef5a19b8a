"""Reports: reports/compat.json (the contract) and reports/COMPAT.md (the grid people read).

Every string that came from a cell (errors, versions, metadata) is untrusted
and escaped before it reaches Markdown.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.version import Version

from .results import SCHEMA_VERSION, CellResult, write_json

SYMBOLS = {"compatible": "✅", "incompatible": "❌", "unresolvable": "⛔", "error": "⚠️"}
LEGEND = {
    "compatible": "installs, imports, builds KTOTrainer and runs BF16 KTO steps with finite losses",
    "incompatible": "installs (or tried to) but fails at the stage shown",
    "unresolvable": "the resolver refuses the pair (the declared requirements conflict)",
    "error": "the harness itself failed (network, crash); says nothing about the pair",
}


def _key(r: CellResult) -> tuple[Version, Version, str]:
    return Version(r.trl), Version(r.transformers), r.resolution


def document(results: Sequence[CellResult], meta: dict[str, Any]) -> dict[str, Any]:
    cells = []
    for r in sorted(results, key=_key):
        d = r.serialize()
        d.pop("cache_key", None)
        cells.append(d)
    return {"schema_version": SCHEMA_VERSION, **meta, "cells": cells}


def md_escape(text: object) -> str:
    """Inert in a Markdown table cell: no HTML, no column breaks, no code spans, one line."""
    s = html.escape(str(text), quote=False)
    s = re.sub(r"[\r\n]+", " ", s)
    return s.replace("|", "\\|").replace("`", "\\`").replace("*", "\\*").replace("_", "\\_").replace("[", "\\[")


def cell_text(r: CellResult) -> str:
    sym = SYMBOLS.get(r.status, "?")
    if r.status == "compatible":
        kw = r.use_keyword()
        return f"{sym} {kw}" if kw else sym
    if r.failure:
        return f"{sym} {r.status} ({md_escape(r.failure.stage)})"
    return f"{sym} {r.status}"


def grid(results: Sequence[CellResult]) -> list[str]:
    trls = sorted({Version(r.trl) for r in results})
    tfs = sorted({Version(r.transformers) for r in results})
    by = {(Version(r.trl), Version(r.transformers)): r for r in results}
    lines = ["| TRL \\ transformers | " + " | ".join(md_escape(t) for t in tfs) + " |",
             "|---|" + "---|" * len(tfs)]
    for t in trls:
        row = [cell_text(by[(t, f)]) if (t, f) in by else "" for f in tfs]
        lines.append(f"| **{md_escape(t)}** | " + " | ".join(row) + " |")
    return lines


def failures(results: Sequence[CellResult]) -> list[str]:
    bad = [r for r in sorted(results, key=_key) if r.failed]
    if not bad:
        return ["No failing cells."]
    # Pairs the resolver accepts but that do not train are the dangerous ones: listed first.
    bad.sort(key=lambda r: (r.status == "unresolvable", r.status == "error"))
    lines = ["| pair | status | stage | raised by | first line of the error |", "|---|---|---|---|---|"]
    for r in bad:
        f = r.failure
        lines.append(
            f"| trl {md_escape(r.trl)} + transformers {md_escape(r.transformers)}"
            f"{'' if r.resolution == 'latest' else ' (' + md_escape(r.resolution) + ')'} | {md_escape(r.status)} | "
            f"{md_escape(f.stage) if f else ''} | {md_escape(f.raised_by or '') if f else ''} | "
            f"{md_escape((f.message or '').splitlines()[0] if f and f.message else '')} |"
        )
    return lines


def markdown(results: Sequence[CellResult], meta: dict[str, Any]) -> str:
    out = ["# KTO compatibility: TRL x transformers", "",
           f"Generated {md_escape(meta.get('generated', ''))} from profile `{md_escape(meta.get('profile', ''))}` "
           f"({len(results)} cells; python {md_escape(meta.get('python', ''))}, torch {md_escape(meta.get('torch', ''))}). "
           "Each cell shows its status and, for compatible pairs, the keyword to hand the tokenizer to `KTOTrainer` under.", ""]
    for res in sorted({r.resolution for r in results}):
        subset = [r for r in results if r.resolution == res]
        out += [f"## Resolution: {md_escape(res)}", "", *grid(subset), ""]
    out += ["### Legend", ""]
    out += [f"- {SYMBOLS[s]} **{s}**: {LEGEND[s]}" for s in SYMBOLS]
    out += ["- `processing_class` / `tokenizer`: the keyword this pair accepts (the new name is shown when both are)", ""]
    out += ["## Failing cells", "", *failures(results), ""]
    return "\n".join(out)


def write(out: Path, results: Sequence[CellResult], meta: dict[str, Any]) -> None:
    meta = {"generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **meta}
    write_json(out / "compat.json", document(results, meta))
    md = out / "COMPAT.md"
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(markdown(results, meta))
    tmp.replace(md)

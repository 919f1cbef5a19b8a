"""Reports: reports/compat.json (the contract) and reports/COMPAT.md (the grid people read).

Every string that came from a cell (errors, versions, metadata) is untrusted
and escaped before it reaches Markdown. write() also renders compat.html
(html.py), junit.xml (junit.py) and, with matplotlib, compat.svg (plot.py).
"""

from __future__ import annotations

import datetime as dt
import html
import re
import sys
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
    marks = "".join(f" ({m})" for m in (*(f"{y} yanked" for y in r.yanked), "forced" if r.forced else "") if m)
    if r.status == "compatible":
        kw = r.use_keyword()
        return (f"{sym} {kw}" if kw else sym) + marks
    if r.failure:
        drift = ", drift" if r.failure.drift else ""
        return f"{sym} {r.status} ({md_escape(r.failure.stage)}{drift}){marks}"
    return f"{sym} {r.status}{marks}"


def adapter_action(r: CellResult) -> str:
    """What compat.adapter does for a script on this pair, from the measured states."""
    if r.status == "unresolvable":
        return "nothing needed: the resolver refuses to install it"
    if r.status == "error":
        return "unknown: not measured (harness error)"
    if r.status == "incompatible":
        return "refuses with advice: BrokenPairError naming the stage and the nearest working pairs, before any heavy work"
    states, use = r.keyword, r.use_keyword()
    rejected = [k for k in ("processing_class", "tokenizer") if states.get(k) == "rejected"]
    legacy = (r.formatter or {}).get("legacy", {})
    broken_cases = sum(1 for v in legacy.values() if v != "pass")
    parts = [f"translates {k}= to {use}=" for k in rejected if use and k != use]
    if broken_cases:
        parts.append(f"formats rows itself (the old format_dataset fails {broken_cases} of {len(legacy)} cases)")
    return "; ".join(parts) or "nothing needed"


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


def _pair(r: CellResult) -> str:
    mode = "" if r.resolution == "latest" else f" ({md_escape(r.resolution)})"
    return f"trl {md_escape(r.trl)} + transformers {md_escape(r.transformers)}{mode}{' (forced)' if r.forced else ''}"


def _first_line(text: str | None) -> str:
    return md_escape((text or "").splitlines()[0] if text else "")


def failures(results: Sequence[CellResult]) -> list[str]:
    bad = [r for r in sorted(results, key=_key) if r.failed]
    if not bad:
        return ["No failing cells."]
    # Pairs the resolver accepts but that do not train are the dangerous ones: listed first.
    bad.sort(key=lambda r: (r.status == "unresolvable", r.status == "error"))
    lines = ["| pair | status | stage | raised by | first line of the error | TRL declares transformers | adapter |",
             "|---|---|---|---|---|---|---|"]
    for r in bad:
        f = r.failure
        stage = f"{md_escape(f.stage)}{' (drift)' if f.drift else ''}" if f else ""
        lines.append(f"| {_pair(r)} | {md_escape(r.status)} | {stage} | {md_escape(f.raised_by or '') if f else ''} | "
                     f"{_first_line(f.message if f else '')} | {md_escape(r.declared or '?')} | {md_escape(adapter_action(r))} |")
    return lines


def installs_but_breaks(results: Sequence[CellResult]) -> list[str]:
    """Pairs pip installs happily that then fail: the ones that bite."""
    rows = [r for r in sorted(results, key=_key) if r.status == "incompatible" and r.failure and r.failure.stage not in ("resolve", "install")]
    if not rows:
        return ["None: every pair that installs also trains."]
    out = []
    for r in rows:
        why = "a dependency drifted under it" if r.failure.drift else f"{md_escape(r.failure.raised_by or 'unknown')} raised"
        allowed = {True: "its metadata allows this transformers", False: "forced past its metadata", None: ""}[r.declared_ok if not r.forced else False]
        out.append(f"- {_pair(r)}: fails at **{md_escape(r.failure.stage)}** ({why}): {_first_line(r.failure.message)}"
                   + (f"; {allowed}" if allowed else ""))
    return out


def modes_disagree(results: Sequence[CellResult]) -> list[str]:
    by: dict[tuple[str, str], dict[str, CellResult]] = {}
    for r in results:
        by.setdefault((r.trl, r.transformers), {})[r.resolution] = r
    out = []
    for (trl, tf), modes in sorted(by.items(), key=lambda kv: (Version(kv[0][0]), Version(kv[0][1]))):
        if len(modes) < 2 or len({m.status for m in modes.values()}) < 2:
            continue
        works = [name for name, m in sorted(modes.items()) if m.status == "compatible"]
        states = "; ".join(f"{name}: {cell_text(m)}" for name, m in sorted(modes.items()))
        verdict = f"works with {', '.join(works)} resolution" if works else "works in neither"
        out.append(f"- trl {md_escape(trl)} + transformers {md_escape(tf)}: {states}. **{verdict}**")
    return out


def metadata_vs_actual(results: Sequence[CellResult]) -> list[str]:
    out = []
    for r in sorted(results, key=_key):
        ok = r.declared_ok
        if ok is True and r.status == "incompatible" and not (r.failure and r.failure.drift):
            out.append(f"- too loose: {_pair(r)}: TRL declares transformers{md_escape(r.declared)} yet the pair fails at {md_escape(r.failure.stage if r.failure else '?')}")
        elif ok is False and r.status == "compatible":
            out.append(f"- too tight: {_pair(r)}: TRL declares transformers{md_escape(r.declared)} yet the pair trains (forced)")
    return out


def warnings_seen(results: Sequence[CellResult]) -> list[str]:
    """Deprecation/Future warnings from import and construction, grouped by message."""
    seen: dict[tuple[str, str], list[str]] = {}
    for r in sorted(results, key=_key):
        for w in r.warnings:
            if w.get("stage") in ("import", "construct") and "Warning" in w.get("category", "") and "log." not in w.get("category", ""):
                seen.setdefault((w["category"], w.get("message", "")), []).append(f"{r.trl}/{r.transformers}")
    return [f"- {md_escape(cat)}: {_first_line(msg)[:300]} (trl/transformers: {', '.join(pairs)})" for (cat, msg), pairs in sorted(seen.items())]


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
    out += ["- `processing_class` / `tokenizer`: the keyword this pair accepts (the new name is shown when both are)",
            "- (drift): failed inside a third-party dependency that moved under the pair, not in trl/transformers",
            "- (yanked) / (forced): a yanked release; run past TRL's declared requirements with uv overrides", ""]
    out += ["## Installs but breaks", "", *installs_but_breaks(results), ""]
    disagree = modes_disagree(results)
    if disagree:
        out += ["## Resolution modes disagree", "", "`latest` resolves dependencies as of today; `as-of-release` as of the pair's release.", "", *disagree, ""]
    mismatch = metadata_vs_actual(results)
    if mismatch:
        out += ["## Declared vs actual", "", *mismatch, ""]
    out += ["## Failing cells", "", *failures(results), ""]
    seen = warnings_seen(results)
    if seen:
        out += ["## Warnings at import and construction", "", *seen, ""]
    return "\n".join(out)


def _replace(path: Path, text: str) -> None:
    """Atomic, like write_json: a reader (or a CI upload) never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write(out: Path, results: Sequence[CellResult], meta: dict[str, Any], *, step_summary: bool = False) -> None:
    """All reports; step_summary also appends the grid to $GITHUB_STEP_SUMMARY (the matrix run asks, tests do not)."""
    meta = {"generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **meta}
    write_json(out / "compat.json", document(results, meta))
    md = out / "COMPAT.md"
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(markdown(results, meta))
    tmp.replace(md)
    from . import html as page, junit, plot  # imported here: they build on this module

    _replace(out / "compat.html", page.render(results, meta))
    _replace(out / "junit.xml", junit.to_xml(results))
    if plot.available():
        _replace(out / "compat.svg", plot.render(results, meta))
    else:
        (out / "compat.svg").unlink(missing_ok=True)  # a stale picture would contradict the grid
        print("compat: matplotlib not installed; skipped compat.svg (pip install 'kto-compat[plot]')", file=sys.stderr)
    if step_summary:
        junit.append_step_summary(results, meta)

"""COMPAT.md (the grid people read) and the GitHub job summary.

Every cell-derived string goes through vocab.md before it reaches Markdown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from compat.contract import CellResult, Status
from compat.harness import specs
from compat.harness.reports import grid as gridmod
from compat.harness.reports.vocab import DRIFT, LEGEND, SYMBOLS, code, first_line, md


def cell_text(r: CellResult) -> str:
    status, detail, marks = gridmod.words(r)
    sym = SYMBOLS.get(status, "?")
    tail = "".join(f" ({md(m)})" for m in marks)
    if r.status == Status.COMPATIBLE:
        return f"{sym} {md(detail)}".rstrip() + tail
    return f"{sym} {md(status)}" + (f" ({md(detail)})" if detail else "") + tail


def grid(section: gridmod.Section) -> list[str]:
    lines = ["| TRL \\ transformers | " + " | ".join(md(t) for t in section.tfs) + " |",
             "|---|" + "---|" * len(section.tfs)]
    for t in section.trls:
        row = [cell_text(c) if (c := section.at(t, f)) else "·" for f in section.tfs]
        lines.append(f"| **{md(t)}** | " + " | ".join(row) + " |")
    return lines


def pair(r: CellResult) -> str:
    mode = "" if r.resolution == "latest" else f" ({md(r.resolution)})"
    trainer = "" if r.trainer == "kto" else f" [{md(r.trainer)}]"
    return f"trl {md(r.trl)} + transformers {md(r.transformers)}{mode}{' (forced)' if r.forced else ''}{trainer}"


def adapter_text(r: CellResult) -> str:
    """What the adapter did in this cell, as measured (compat/cell tests record it)."""
    if r.status in (Status.UNRESOLVABLE, Status.ERROR):
        return "not run: no environment" if r.status == Status.UNRESOLVABLE else "not run (harness error)"
    if not specs.adapter_covers(r.trainer):
        return f"n/a (the adapter covers {specs.adapter_titles()})"
    detail = r.adapter_detail or {}
    what = "; ".join(f"{k}: {v}" for k, v in sorted(detail.items()))
    failed = adapter_test_failures(r)
    also = f"; but {len(failed)} adapter test(s) failed: {', '.join(failed)}" if failed else ""
    return f"{r.adapter or 'not run'}" + (f": {what}" if what else "") + also


def adapter_test_failures(r: CellResult) -> list[str]:
    """The cell's failed tests of the adapter module (tests/cell/<trainer>/test_adapter.py): the script's run can
    pass while another adapter test fails, and the adapter column must not read as a clean pass then."""
    return [f.id.split("::", 1)[-1] for f in (r.tests.failed if r.tests else ()) if "/test_adapter.py::" in f.id]


def failing(results: Sequence[CellResult]) -> list[str]:
    bad = [r for r in gridmod.ordered(results) if r.failed]
    if not bad:
        return ["No failing cells."]
    # Pairs the resolver accepts but that do not train are the dangerous ones: listed first.
    bad.sort(key=lambda r: (r.status == Status.UNRESOLVABLE, r.status == Status.ERROR))
    lines = ["| pair | status | stage | raised by | first line of the error | TRL declares transformers | adapter |",
             "|---|---|---|---|---|---|---|"]
    for r in bad:
        f = r.failure
        stage = (f"{md(f.stage)}{' (drift)' if f.drift else ''}") if f else ""
        message = first_line(f.message) if f else ""
        if f and f.drift:
            message = f"{message} — {f.drift.describe()}"
        lines.append(f"| {pair(r)} | {md(r.status)} | {stage} | {md(f.raised_by or '') if f else ''} | "
                     f"{md(message)} | {md(r.declared or '?')} | {md(adapter_text(r))} |")
    return lines


def failed_tests(results: Sequence[CellResult]) -> list[str]:
    out = []
    for r in gridmod.ordered(results):
        for t in (r.tests.failed if r.tests else ()):
            out.append(f"- {pair(r)}: {code(t.id)} {md(t.outcome)}: {md(first_line(t.message))}")
    return out


def installs_but_breaks(results: Sequence[CellResult]) -> list[str]:
    """Pairs pip installs happily that then fail: the ones that bite."""
    rows = [r for r in gridmod.ordered(results)
            if r.status == Status.INCOMPATIBLE and r.failure and r.failure.stage not in ("resolve", "install")]
    if not rows:
        return ["None: every pair that installs also trains."]
    out = []
    for r in rows:
        f = r.failure
        assert f is not None
        why = f.drift.describe() if f.drift else f"{f.raised_by or 'unknown'} raised"  # escaped once, below
        allowed = {True: "its metadata allows this transformers", False: "forced past its metadata", None: ""}[
            r.declared_ok if not r.forced else False]
        out.append(f"- {pair(r)}: fails at **{md(f.stage)}** ({md(why)}): {md(first_line(f.message))}"
                   + (f"; {allowed}" if allowed else ""))
    return out


def modes_disagree(results: Sequence[CellResult]) -> list[str]:
    by: dict[tuple[Any, ...], dict[str, CellResult]] = {}
    for r in results:
        by.setdefault((r.trainer, r.trl, r.transformers), {})[r.resolution] = r
    out = []
    for (_trainer, trl, tf), modes in sorted(by.items(), key=lambda kv: kv[0]):
        if len(modes) < 2 or len({m.status for m in modes.values()}) < 2:
            continue
        works = [name for name, m in sorted(modes.items()) if m.status == Status.COMPATIBLE]
        states = "; ".join(f"{md(name)}: {cell_text(m)}" for name, m in sorted(modes.items()))
        verdict = f"works with {', '.join(md(w) for w in works)} resolution" if works else "works in neither"
        out.append(f"- trl {md(trl)} + transformers {md(tf)}: {states}. **{verdict}**")
    return out


def metadata_vs_actual(results: Sequence[CellResult]) -> list[str]:
    out = []
    for r in gridmod.ordered(results):
        ok = r.declared_ok
        if ok is True and r.status == Status.INCOMPATIBLE and not (r.failure and r.failure.drift):
            out.append(f"- too loose: {pair(r)}: TRL declares transformers{md(r.declared)} yet the pair fails at "
                       f"{md(r.failure.stage if r.failure else '?')}")
        elif ok is False and r.status == Status.COMPATIBLE:
            out.append(f"- too tight: {pair(r)}: TRL declares transformers{md(r.declared)} yet the pair trains (forced)")
    return out


def warnings_seen(results: Sequence[CellResult]) -> list[str]:
    """Deprecation/Future warnings from import and construction, grouped by message, with the
    function that emitted them where the cell measured it (TRL's trainer or transformers' Trainer)."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for r in gridmod.ordered(results):
        for w in r.warnings:
            category = str(w.get("category", ""))
            if w.get("stage") in ("import", "construct") and "Warning" in category and "log." not in category:
                emitter = str(w.get("emitter") or "")
                for kw in ("processing_class", "tokenizer"):
                    by = r.probes.get(f"deprecated_by.{kw}")
                    if by and f"[{kw}=]" in str(w.get("message", "")):
                        emitter = str(by)
                seen.setdefault((category, str(w.get("message", "")), emitter), []).append(f"{r.trl}/{r.transformers}")
    return [f"- {md(cat)}{f' from `{md(who)}`' if who else ''}: {md(first_line(msg))} "
            f"(trl/transformers: {md(', '.join(dict.fromkeys(pairs)))})" for (cat, msg, who), pairs in sorted(seen.items())]


def legend() -> list[str]:
    return [*(f"- {SYMBOLS[s]} **{s}**: {LEGEND[s]}" for s in SYMBOLS),
            "- `processing_class` / `tokenizer`: the keyword to hand the tokenizer under (the new name when both work)",
            "- · : not measured (no cell ran this pair; it says nothing either way)",
            f"- (drift): {DRIFT}",
            "- (yanked) / (forced): a yanked release; run past TRL's declared requirements with uv overrides"]


def header(meta: Mapping[str, Any], results: Sequence[CellResult]) -> list[str]:
    hardware = meta.get("hardware") or ", ".join(sorted({str((r.training or {}).get("device")) for r in results
                                                          if r.training})) or "?"
    return [f"Measured {md(meta.get('generated', ''))} from profile {code(meta.get('profile', ''))} "
            f"({len(results)} cells; python {md(meta.get('python', ''))}, torch {md(meta.get('torch', ''))}, "
            f"on {md(hardware)}). Each cell shows its status and, for compatible pairs, the keyword to hand the "
            "tokenizer to the trainer under. Rows and columns are newest first."]


def document(results: Sequence[CellResult], meta: Mapping[str, Any]) -> str:
    out = ["# KTO compatibility: TRL x transformers", "", *header(meta, results), ""]
    for section in gridmod.sections(results):
        out += [f"## {md(section.title)}", "", *grid(section), ""]
    out += ["### Legend", "", *legend(), ""]
    out += ["## Installs but breaks", "", *installs_but_breaks(results), ""]
    disagree = modes_disagree(results)
    if disagree:
        out += ["## Resolution modes disagree", "",
                "`latest` resolves dependencies as of today; `as-of-release` as of the pair's release.", "", *disagree, ""]
    mismatch = metadata_vs_actual(results)
    if mismatch:
        out += ["## Declared vs actual", "", *mismatch, ""]
    out += ["## Failing cells", "", *failing(results), ""]
    tests = failed_tests(results)
    if tests:
        out += ["## Failed cell tests", "", *tests, ""]
    seen = warnings_seen(results)
    if seen:
        out += ["## Warnings at import and construction", "", *seen, ""]
    return "\n".join(out)


def summary(results: Sequence[CellResult], meta: Mapping[str, Any], max_failures: int = 40) -> str:
    """A job summary: counts, the grid and the first failing cells."""
    counts = Counter(str(r.status) for r in results)
    out = ["## KTO compatibility: TRL x transformers", "",
           f"{len(results)} cells from profile {code(meta.get('profile', ''))}: "
           + " · ".join(f"{sym} {counts[s]} {s}" for s, sym in SYMBOLS.items()), ""]
    for section in gridmod.sections(results):
        out += [f"### {md(section.title)}", "", *grid(section), ""]
    rows = failing(results)
    if len(rows) > max_failures + 2:
        rows = [*rows[: max_failures + 2], f"\n... and {len(rows) - max_failures - 2} more failing cells: see compat.html"]
    out += ["### Failing cells", "", *rows, ""]
    return "\n".join(out)

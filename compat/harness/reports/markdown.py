"""COMPAT.md (the answer people read), GRIDS.md (every grid and failing cell) and the GitHub job summary.

COMPAT.md answers first: one line per TRL release (the transformers it trains with, the keyword, the line
that reproduces its newest working cell from that cell's lock), then the pairs pip installs but that break, grouped by cause; the grids sit collapsed below. The
full failing-cell tables, which run to megabytes at the full profile, live in GRIDS.md beside it.

Every cell-derived string goes through vocab.md before it reaches Markdown, and through vocab.unpath first:
a published report never shows the paths of the machine that built it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packaging.version import Version

from compat.contract import DEFAULT_TRAINER, KEYWORDS, CellResult, Failure, Resolution, Stage, Status
from compat.harness import axes, environments, specs
from compat.harness.reports import grid as gridmod
from compat.harness.reports.vocab import (
    DRIFT,
    LEGEND,
    PLATFORM,
    SYMBOLS,
    code,
    first_line,
    md,
    platform_reason,
    shown,
    status_name,
    unpath,
)

GRIDS = "GRIDS.md"  # beside COMPAT.md: the full grids and every failing cell
DASH = "\u2013"


def cell_text(r: CellResult) -> str:
    status, detail, marks = gridmod.words(r)
    sym = SYMBOLS.get(status, "?")
    tail = "".join(f" ({md(m)})" for m in marks)
    if r.status == Status.COMPATIBLE:
        return f"{sym} {md(detail)}".rstrip() + tail
    return f"{sym} {md(status_name(status))}" + (f" ({md(detail)})" if detail else "") + tail


def grid(section: gridmod.Section) -> list[str]:
    lines = ["| TRL \\ transformers | " + " | ".join(md(t) for t in section.tfs) + " |",
             "|---|" + "---|" * len(section.tfs)]
    for t in section.trls:
        row = [cell_text(c) if (c := section.at(t, f)) else "·" for f in section.tfs]
        lines.append(f"| **{md(t)}** | " + " | ".join(row) + " |")
    return lines


def pair(r: CellResult) -> str:
    mode = "" if r.resolution == Resolution.LATEST else f" ({md(r.resolution)})"
    trainer = "" if r.trainer == DEFAULT_TRAINER else f" [{md(r.trainer)}]"
    return f"{axes_text(r)}{mode}{' (forced)' if r.forced else ''}{trainer}"


def axes_text(r: CellResult) -> str:
    """``trl 0.12.2 + transformers 4.46.3`` (+ ``datasets 3.6.0`` for each further axis)."""
    return axes.named(r.all_axes, md)


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


def message(f: Failure | None) -> str:
    """The first line of a failure's error, without the build machine's paths."""
    return first_line(unpath(f.message)) if f else ""


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
        text = message(f)
        if f and f.drift:
            text = f"{text} — {f.drift.describe()}"
        status = f"{status_name(shown(r))}: {platform_reason(r)}" if platform_reason(r) else str(r.status)
        lines.append(f"| {pair(r)} | {md(status)} | {stage} | {md(f.raised_by or '') if f else ''} | "
                     f"{md(text)} | {md(r.declared or '?')} | {md(adapter_text(r))} |")
    return lines


def failed_tests(results: Sequence[CellResult]) -> list[str]:
    out = []
    for r in gridmod.ordered(results):
        for t in (r.tests.failed if r.tests else ()):
            out.append(f"- {pair(r)}: {code(t.id)} {md(t.outcome)}: {md(first_line(unpath(t.message)))}")
    return out


def dangerous(results: Iterable[CellResult]) -> list[CellResult]:
    """Pairs pip installs happily that then fail: the ones that bite. A failure measured to belong to the
    platform is not one of them (see ``platform_bound``)."""
    return [r for r in gridmod.ordered(list(results)) if r.status == Status.INCOMPATIBLE and r.failure
            and r.failure.stage not in (Stage.RESOLVE, Stage.INSTALL) and not platform_reason(r)]


def platform_bound(results: Iterable[CellResult]) -> list[str]:
    """Cells that fail on the platform the table ran on, grouped by the measured reason, with their pairs."""
    groups: dict[tuple[str, str, str], list[CellResult]] = {}
    for r in gridmod.ordered(list(results)):
        why = platform_reason(r)
        if why and r.failure:
            groups.setdefault((why, r.failure.stage, message(r.failure)), []).append(r)
    out = []
    for (why, stage, text), rows in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        trls = ", ".join(dict.fromkeys(md(r.trl) for r in rows))
        out.append(f"- {SYMBOLS[PLATFORM]} **{len(rows)} {'cells fail' if len(rows) > 1 else 'cell fails'} on CPU** "
                   f"(trl {trls}) at {md(stage)}: {md(text)}. Why it is the platform's: {md(why)}. On a GPU these "
                   "pairs were not measured: `kto-compat check` there says so (exit 3).")
    return out


def installs_but_breaks(results: Sequence[CellResult]) -> list[str]:
    """Every installs-but-breaks pair on its own line (GRIDS.md)."""
    rows = dangerous(results)
    if not rows:
        return ["None: every pair that installs also trains."]
    out = []
    for r in rows:
        f = r.failure
        assert f is not None
        why = f.drift.describe() if f.drift else f"{f.raised_by or 'unknown'} raised"  # escaped once, below
        allowed = {True: "its metadata allows this transformers", False: "forced past its metadata", None: ""}[
            r.declared_ok if not r.forced else False]
        out.append(f"- {pair(r)}: fails at **{md(f.stage)}** ({md(why)}): {md(message(f))}"
                   + (f"; {allowed}" if allowed else ""))
    return out


def modes_disagree(results: Sequence[CellResult]) -> list[str]:
    by: dict[tuple[Any, ...], dict[str, CellResult]] = {}
    for r in results:
        by.setdefault((r.trainer, *r.all_axes.items()), {})[r.resolution] = r
    out = []
    for _key, modes in sorted(by.items(), key=lambda kv: kv[0]):
        if len(modes) < 2 or len({m.status for m in modes.values()}) < 2:
            continue
        works = [name for name, m in sorted(modes.items()) if m.status == Status.COMPATIBLE]
        states = "; ".join(f"{md(name)}: {cell_text(m)}" for name, m in sorted(modes.items()))
        verdict = f"works with {', '.join(md(w) for w in works)} resolution" if works else "works in neither"
        out.append(f"- {axes_text(next(iter(modes.values())))}: {states}. **{verdict}**")
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
            if w.get("stage") in (Stage.IMPORT, Stage.CONSTRUCT) and "Warning" in category and "log." not in category:
                emitter = str(w.get("emitter") or "")
                for kw in KEYWORDS:
                    by = r.probes.get(f"deprecated_by.{kw}")
                    if by and f"[{kw}=]" in str(w.get("message", "")):
                        emitter = str(by)
                seen.setdefault((category, str(w.get("message", "")), emitter), []).append(f"{r.trl}/{r.transformers}")
    return [f"- {md(cat)}{f' from `{md(who)}`' if who else ''}: {md(first_line(unpath(msg)))} "
            f"(trl/transformers: {md(', '.join(dict.fromkeys(pairs)))})" for (cat, msg, who), pairs in sorted(seen.items())]


def legend() -> list[str]:
    return [*(f"- {SYMBOLS[s]} **{status_name(s)}**: {LEGEND[s]}" for s in SYMBOLS),
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
            "tokenizer to the trainer under. Rows and columns are newest first." + suites_note(meta, results)]


def suites_note(meta: Mapping[str, Any], results: Sequence[CellResult]) -> str:
    """Where the cells carry more than one cell suite (a rerun under a new suite lands in pieces), how many
    were measured under the newest and how many under earlier ones, which a rerun replaces."""
    counts = Counter(r.suite for r in results)
    if len(counts) < 2:
        return ""
    when = meta.get("measured") or {}
    newest = max(counts, key=lambda s: (max(str(when.get(r.id, "")) for r in results if r.suite == s), counts[s]))
    older = sum(n for s, n in counts.items() if s != newest)
    return (f" {older} of these {len(results)} cells were measured under an earlier cell suite and await a rerun "
            f"under the newest ({code(newest)}, {counts[newest]} cells): they carry no lock and lack the newer probes.")


def versions(vs: Sequence[Version]) -> str:
    """"lo-hi" of a range given as [lo, ..., hi], or the one version when lo is hi."""
    return f"{vs[0]}" if vs[0] == vs[-1] else f"{vs[0]}{DASH}{vs[-1]}"


def works_with(section: gridmod.Section, trl: Version) -> str:
    """"4.46.3-4.57.6 (inferred: 4.50.3), 5.1.0" from the row's measured spans, newest first."""
    parts = []
    for sp in reversed(section.spans(trl)):
        gaps = f" (inferred, not measured: {', '.join(map(str, sp.gaps))})" if sp.gaps else ""
        parts.append(f"{versions([sp.lo, sp.hi])}{gaps}" if sp.lo != sp.hi else f"{sp.lo} only{gaps}")
    return ", ".join(parts)


def keyword_words(section: gridmod.Section, trl: Version) -> str:
    runs = section.uses(trl)
    if len(runs) == 1:
        return f"use `{runs[0][0]}=`"
    return "use " + ", ".join(f"`{u}=` ({versions([lo, hi])})" for u, lo, hi in reversed(runs))


def install(r: CellResult | None) -> str:
    """The line reproducing a cell (environments.install_line), and for an as-of-release cell how it resolved."""
    if r is None:
        return ""
    cell = environments.from_result(r)
    human = environments.human_line(cell) if cell.lock else None
    return code(environments.install_line(cell)) + (f" (resolved as {code(human)})" if human else "")


def row_line(section: gridmod.Section, trl: Version, others: Sequence[gridmod.Section]) -> str:
    """One TRL release in one line: where it trains, under which keyword, and the line reproducing its newest working cell."""
    spans = section.spans(trl)
    if spans:
        newest = spans[-1].hi
        return (f"- **trl {md(trl)}**: works with transformers {md(works_with(section, trl))}; "
                f"{keyword_words(section, trl)}; {install(section.at(trl, newest))}")
    row = [r for tf in section.tfs if (r := section.at(trl, tf)) is not None]
    counts = Counter(status_name(shown(r)) for r in row)
    drift = sum(1 for r in row if r.failure and r.failure.drift)
    why = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    line = f"- **trl {md(trl)}**: no measured transformers release trains it ({why}{f'; {drift} by dependency drift' if drift else ''})"
    bound = [r for r in row if platform_reason(r)]
    if bound:
        some = "all" if len(bound) == len(row) else str(len(bound))
        line += (f"; {some} of its cells {SYMBOLS[PLATFORM]} {'fails' if some == '1' else 'fail'} on CPU only "
                 f"(platform-bound, not the pair): {md(platform_reason(bound[0]))}; on a GPU not measured")
    causes = Counter((r.failure.stage, message(r.failure)) for r in row
                     if r.status == Status.INCOMPATIBLE and r.failure and not platform_reason(r))
    if causes:
        (stage, text), n = causes.most_common(1)[0]
        line += f"; {'all' if n == len(row) else n} of its cells fail at {md(stage)}: {md(text)}"
    for other in others:
        if section.same_view(other) and other.spans(trl):
            line += (f"; with dependencies resolved {md(other.resolution)}: works with transformers "
                     f"{md(works_with(other, trl))}, {keyword_words(other, trl)}, "
                     f"{install(other.at(trl, other.spans(trl)[-1].hi))}")
    return line


def at_a_glance(sections: Sequence[gridmod.Section]) -> list[str]:
    out: list[str] = []
    for section in sections:
        out += [f"## {md(section.title)}", ""]
        if section.resolution != Resolution.LATEST:
            out += [f"Resolved {md(section.resolution)}: the other dependencies these cells installed are those "
                    "of the pair's release.", ""]
        out += [*(row_line(section, t, sections) for t in section.trls), ""]
    return out


def _runs(section: gridmod.Section, trl: Version, pairs: set[tuple[Version, Version]]) -> list[str]:
    """Columns of row ``trl`` in ``pairs`` as ranges of adjacent grid columns (oldest-newest), newest first."""
    out: list[list[Version]] = [[]]
    for tf in section.tfs:
        if (trl, tf) in pairs:
            out[-1].append(tf)
        elif out[-1]:
            out.append([])
    return [versions([run[-1], run[0]]) for run in out if run]


def by_cause(results: Sequence[CellResult]) -> list[str]:
    """The installs-but-breaks pairs grouped by cause (stage, who raised, the error's first line), most pairs
    first; each group names its pairs as TRL rows with ranges of transformers columns."""
    groups: dict[tuple[str, str, str], list[CellResult]] = {}
    for r in dangerous(results):
        f = r.failure
        assert f is not None
        who = f.drift.describe() if f.drift else f"raised by {f.raised_by or 'unknown'}"
        groups.setdefault((f.stage, who, message(f)), []).append(r)
    if not groups:
        return ["None: every pair that installs also trains."]
    sections = {s.key: s for s in gridmod.sections(results)}
    out = []
    for (stage, who, text), rows in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        out.append(f"- **{len(rows)} {'pairs fail' if len(rows) > 1 else 'pair fails'}** at {md(stage)} ({md(who)}): {md(text)}")
        by_row: dict[tuple[gridmod.Key, Version], set[tuple[Version, Version]]] = {}
        for r in rows:
            by_row.setdefault((gridmod.key_of(r), r.trl), set()).add((r.trl, r.transformers))
        for (key, trl), pairs in by_row.items():
            section = sections[key]
            where = "" if key == (DEFAULT_TRAINER, Resolution.LATEST, False, ()) else f" ({md(section.title)})"
            out.append(f"  - trl {md(trl)} with transformers {md(', '.join(_runs(section, trl, pairs)))}{where}")
    return out


def document(results: Sequence[CellResult], meta: Mapping[str, Any]) -> str:
    """COMPAT.md: the answer first, one line a TRL release; the dangerous pairs by cause; the grids collapsed."""
    sections = gridmod.sections(results)
    dangerous_count = len(dangerous(results))
    out = [f"# {md(specs.report_title(results))}: TRL x transformers", "", *header(meta, results), "",
           "One line per TRL release, newest first: the transformers releases it was measured to train with, the "
           "keyword to hand the tokenizer to the trainer under, and the line that reproduces its newest working cell "
           "(`kto-compat lock` writes the cell's lock: every distribution it ran with, torch's build included). "
           f"Below: the {dangerous_count} pairs pip installs but that break, by cause; then the grids (collapsed). "
           f"Every failing cell, with its error, is in [{GRIDS}]({GRIDS}); the page (index.html) searches them.", "",
           *at_a_glance(sections)]
    out += ["## Installs but breaks, by cause", "",
            "pip installs these pairs without complaint; they fail when a script runs them.", "", *by_cause(results), ""]
    bound = platform_bound(results)
    if bound:
        out += ["## Fails on CPU only (platform-bound)", "",
                "These failures moved when the platform fact behind them was changed and the cell measured again "
                "(`kto-compat platform`): they belong to the CPU-only platform the table ran on, not to the pair.", "",
                *bound, ""]
    disagree = modes_disagree(results)
    if disagree:
        out += ["## Resolution modes disagree", "",
                "`latest` resolves dependencies as of today; `as-of-release` as of the pair's release.", "", *disagree, ""]
    mismatch = metadata_vs_actual(results)
    if mismatch:
        out += [f"{len(mismatch)} pairs where TRL's declared transformers requirement and the measurement disagree: "
                f"listed in [{GRIDS}]({GRIDS}).", ""]
    out += ["## The grids", ""]
    for section in sections:
        out += ["<details>", f"<summary>{md(section.title)}: {len(section.trls)} TRL x {len(section.tfs)} transformers"
                "</summary>", "", *grid(section), "", "</details>", ""]
    out += ["### Legend", "", *legend(), ""]
    seen = warnings_seen(results)
    if seen:
        out += ["## Warnings at import and construction", "", *seen, ""]
    return "\n".join(out)


def grids_document(results: Sequence[CellResult], meta: Mapping[str, Any]) -> str:
    """GRIDS.md: every grid in full, and every failing cell with its error, raiser and adapter outcome."""
    out = [f"# {md(specs.report_title(results))}: the full grids and every failing cell", "", *header(meta, results), "",
           "The answer, one line per TRL release, is in [COMPAT.md](COMPAT.md).", ""]
    for section in gridmod.sections(results):
        out += [f"## {md(section.title)}", "", *grid(section), ""]
    out += ["### Legend", "", *legend(), ""]
    out += ["## Installs but breaks", "", *installs_but_breaks(results), ""]
    bound = platform_bound(results)
    if bound:
        out += ["## Fails on CPU only (platform-bound)", "", *bound, ""]
    mismatch = metadata_vs_actual(results)
    if mismatch:
        out += ["## Declared vs actual", "", *mismatch, ""]
    out += ["## Failing cells", "", *failing(results), ""]
    tests = failed_tests(results)
    if tests:
        out += ["## Failed cell tests", "", *tests, ""]
    return "\n".join(out)


def summary(results: Sequence[CellResult], meta: Mapping[str, Any], max_failures: int = 40) -> str:
    """A job summary: counts, the grid and the first failing cells."""
    counts = Counter(shown(r) for r in results)
    out = [f"## {md(specs.report_title(results))}: TRL x transformers", "",
           f"{len(results)} cells from profile {code(meta.get('profile', ''))}: "
           + " · ".join(f"{sym} {counts[s]} {status_name(s)}" for s, sym in SYMBOLS.items()), ""]
    for section in gridmod.sections(results):
        out += [f"### {md(section.title)}", "", *grid(section), ""]
    rows = failing(results)
    if len(rows) > max_failures + 2:
        rows = [*rows[: max_failures + 2], f"\n... and {len(rows) - max_failures - 2} more failing cells: see compat.html"]
    out += ["### Failing cells", "", *rows, ""]
    return "\n".join(out)

"""reports/compat.html: the grid as one self-contained page people click through.

Why a page: COMPAT.md answers "does this pair train?" with one symbol. The next
questions ("which class rejected `tokenizer`?", "which formatter cases broke?",
"how much memory?") are answered by compat.json, which nobody reads raw. The
page embeds that data, draws the grid, and opens any cell on click (and on a
#<cell id> permalink), with the line that reproduces the cell's environment (its lock).

Truthfulness: the page says only what was measured. A grid position no cell
ran is marked "not measured"; inside a row's measured working range it is
marked "inferred", never with a status symbol.

Size: a full profile is ~1,750 cells, so a cell's entry is compact (see
page_data) and whatever repeats across cells is interned: the page stays
well under 3 MB and is interactive in well under a second.

Safety: every string from a cell (errors, versions, warnings, metadata) is
untrusted. It travels only inside one <script type="application/json"> block,
where `<`, `>` and `&` are written as JSON \\u escapes so no text can close the
block, and the page's script inserts it with textContent only (never
innerHTML). A Content-Security-Policy admits just this page's own script and
style, by hash, and no network at all: the page fetches nothing, and injected
markup could not run even if a mistake let some through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from compat import probes as registry
from compat.cell.adapter import closest
from compat.contract import KEYWORDS, CellResult, Status
from compat.harness import axes, environments, faults, fixed_sets, specs
from compat.harness.reports import grid
from compat.harness.reports.vocab import (
    COLOURS,
    COLOURS_DARK,
    DRIFT,
    DRIFT_WORDS,
    GLYPHS,
    INFERRED,
    KEYWORD_MARKS,
    LEGEND,
    NOT_MEASURED,
    PLATFORM,
    RESOLUTION_WORDS,
    STAGE_LETTERS,
    STAGE_MARKS,
    SYMBOLS,
    plain,
    probe_words,
    shown,
    status_name,
    unpath,
)

_ASSETS = Path(__file__).with_name("html_assets")
# The two marks of a grid position no cell measured (the legend's words for them).
NOT_MEASURED_TEXT = ("nothing was measured here (no cell ran the pair, or its cell stopped before this check): "
                     "it says nothing either way")
INFERRED_TEXT = ("not measured, but inside the row's measured working range (compatible cells on both sides): "
                 "probably works; an inference, not a measurement")


def _finite(value: Any) -> Any:
    """JSON.parse rejects NaN/Infinity, and a diverged loss is exactly what a cell may record."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class _Interner:
    """Whatever repeats across cells is stored once and referenced by index: case ids, case sets,
    formatter outcome tables, environments, warnings and adapter details."""

    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.sets: dict[tuple[int, ...], int] = {}
        self.tables: dict[str, int] = {}
        self.envs: dict[str, int] = {}
        self.warnings: dict[str, int] = {}
        self.details: dict[str, int] = {}

    def formatter(self, kinds: Mapping[str, Mapping[str, str]]) -> dict[str, int]:
        """{kind: index into `fmts`}; a table is {"set": case-set index, "bad": {outcome: [case index]}}."""
        out: dict[str, int] = {}
        for kind, outcomes in sorted(kinds.items()):
            ids = tuple(self.cases.setdefault(str(c), len(self.cases)) for c in sorted(outcomes))
            bad: dict[str, list[int]] = {}
            for case, outcome in outcomes.items():
                if outcome != "pass":
                    bad.setdefault(str(outcome), []).append(self.cases[str(case)])
            table = {"set": self.sets.setdefault(ids, len(self.sets)), "bad": {k: sorted(v) for k, v in sorted(bad.items())}}
            out[kind] = self.tables.setdefault(json.dumps(table, sort_keys=True), len(self.tables))
        return out

    def environment(self, env: Mapping[str, str], r: CellResult) -> int:
        """An environment with the cell's own axes' versions (trl, transformers, datasets, ...) written as
        null ("this cell's"), so cells that installed the same other distributions share one entry."""
        own = axes.pins(r)
        shared = {k: (None if own.get(k) == v else v) for k, v in env.items()}
        return self.envs.setdefault(json.dumps(shared, sort_keys=True), len(self.envs))

    @staticmethod
    def _one(table: dict[str, int], value: Any) -> int:
        return table.setdefault(json.dumps(_finite(value), sort_keys=True), len(table))

    def warning(self, w: Mapping[str, Any]) -> int:
        return self._one(self.warnings, {**w, "message": unpath(w.get("message", ""))} if "message" in w else w)

    def detail(self, d: Mapping[str, Any]) -> int:
        return self._one(self.details, d)

    @staticmethod
    def ordered(table: Mapping[Any, int]) -> list[Any]:
        return sorted(table, key=table.__getitem__)

    @staticmethod
    def loaded(table: Mapping[str, int]) -> list[Any]:
        return [json.loads(t) for t in sorted(table, key=table.__getitem__)]


def _span(s: grid.Span) -> dict[str, Any]:
    return {"lo": str(s.lo), "hi": str(s.hi), "measured": [str(v) for v in s.measured], "gaps": [str(v) for v in s.gaps]}


# Fields a cell's page entry leaves out: the section holds trl/transformers (row/col), further axes,
# resolution, trainer and forced; the registry values travel as `pv`; cache_key is never shown.
_FROM_SECTION = ("trl", "transformers", "axes", "resolution", "trainer", "forced", "cache_key")


def _empty(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)


def _cell(r: CellResult, i: int, j: int, interner: _Interner, meta: Mapping[str, Any]) -> dict[str, Any]:
    """One cell as the page reads it: the contract's fields less what is empty, derivable or interned."""
    d = replace(r, formatter={}, environment={}, warnings=()).serialize()  # asdict would deep-copy every table
    for name in _FROM_SECTION:
        d.pop(name, None)
    # Registry values travel once, as `pv`. Whatever else a registry-named field holds (a value of a probe
    # that does not apply to this trainer, a keyword the registry does not know) goes to `probes`, which
    # the page lists as other measurements: nothing measured is dropped.
    applies = registry.for_trainer(r.trainer)
    extra: dict[str, Any] = d.pop("probes", None) or {}
    for p in registry.PROBES:
        head, _, rest = p.key.partition(".")
        if head not in d:  # kept under the cell's `probes`
            value = extra.pop(p.key, None)
        elif not rest:
            value = d.pop(head)
        else:
            value = d[head].pop(rest, None) if isinstance(d[head], dict) else None
        if p not in applies and value is not None and str(value) not in p.unmeasured:
            extra[p.key] = value
    for head in {p.key.partition(".")[0] for p in registry.PROBES} & set(d):
        if isinstance(d[head], dict):
            extra.update({f"{head}.{k}": v for k, v in d.pop(head).items() if v is not None})
    if extra:
        d["probes"] = extra
    suite = d.pop("suite", "")
    d = {k: v for k, v in d.items() if not _empty(v)}
    if suite != meta.get("suite", ""):
        d["suite"] = suite  # the page shows the run's suite unless this cell ran under another one
    if r.failure is not None:
        d["failure"] = {k: v for k, v in d["failure"].items() if v is not None}
        d["failure"]["message"] = unpath(r.failure.message)  # the build machine's paths stay off the page
        if r.failure.drift is not None:
            d["failure"]["drift"]["cause"] = r.failure.drift.describe()
    if r.tests is not None and not r.tests.failed:
        d["tests"].pop("failed", None)
    for t in (d.get("tests") or {}).get("failed", []):
        t["message"] = unpath(t.get("message", ""))
    if r.declared_ok is not None:
        d["declared_ok"] = r.declared_ok
    if r.adapter_detail:
        d["adapter_detail"] = interner.detail(r.adapter_detail)
    pv = [r.probe(p.key) if p in applies else None for p in registry.PROBES]
    while pv and pv[-1] is None:
        pv.pop()
    if pv:
        d["pv"] = pv
    kinds = interner.formatter(r.formatter or {})
    if kinds:
        d["fmt"] = kinds
    if r.environment:
        d["env"] = interner.environment(r.environment, r)
    if r.warnings:
        d["warnings"] = [interner.warning(w) for w in r.warnings]
    use = r.use_keyword()
    # `pip`: the line to copy, which reproduces the cell (its lock; the bare pair where nothing was installed).
    measured = environments.from_result(r)
    resolved = environments.human_line(measured)
    d.update(id=r.id, status=str(r.status), row=i, col=j, pip=environments.install_line(measured),
             **({"use": use} if use else {}), **({"resolved": resolved} if resolved and measured.lock else {}))
    return d


def _view(section: Mapping[str, Any]) -> str:
    """A section's trainer and further axes: the grids a cell's nearest working pair may come from."""
    return json.dumps([section["trainer"], section.get("axes", {})], sort_keys=True)


def _nearest_working(cells: list[dict[str, Any]], sections: list[dict[str, Any]]) -> None:
    """Give every cell that does not train ``near``: the measured-compatible cell closest to it (same TRL first,
    then same transformers, as `check` ranks them), from its own grid, else from the other grids of its trainer
    at the same further axes."""
    working: dict[str, dict[tuple[str, str], int]] = {}  # trainer and axes -> pair -> cell index, own grid first
    own: list[dict[tuple[str, str], int]] = []
    for s in sections:
        pairs = {(s["trls"][cells[i]["row"]], s["tfs"][cells[i]["col"]]): i for i in s["cells"]
                 if cells[i]["status"] == Status.COMPATIBLE}
        own.append(pairs)
        for pair, i in pairs.items():
            working.setdefault(_view(s), {}).setdefault(pair, i)
    for s, pairs in zip(sections, own, strict=True):
        for i in s["cells"]:
            c = cells[i]
            if c["status"] == Status.COMPATIBLE:
                continue
            pool = pairs or working.get(_view(s), {})
            pair = (s["trls"][c["row"]], s["tfs"][c["col"]])
            # closest() ranks the same row first, then the same column: only those need ranking when they exist.
            points = ([p for p in pool if p[0] == pair[0]] or [p for p in pool if p[1] == pair[1]] or list(pool))
            near = closest(pair, [list(p) for p in points], 1)
            if near:
                c["near"] = pool[near[0]]


def page_data(results: Sequence[CellResult], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the page script needs: sections (one per trainer and resolution, newest first) of cells,
    each row's measured spans and keyword runs, and the probe registry the colouring iterates.

    A cell's entry is compact (the page must stay small at ~1,750 cells): empty fields are left out;
    trl, transformers, resolution, trainer and forced come from its section (``row``, ``col``);
    registry probe values are ``pv``, aligned with ``probes``; ``fmt`` indexes ``fmts`` per ``kinds``
    entry; ``env``, ``warnings`` and ``adapter_detail`` index ``envs``, ``warnings`` and ``details``.
    """
    interner = _Interner()
    cells: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []
    for section in grid.sections(results):
        entry: dict[str, Any] = {"title": section.title, "trainer": section.trainer, "resolution": section.resolution,
                                 "adapter": specs.adapter_covers(section.trainer),
                                 "forced": section.forced, "trls": [str(t) for t in section.trls],
                                 **({"axes": axes.strings(section.axes)} if section.axes else {}),
                                 "tfs": [str(t) for t in section.tfs], "cells": [],
                                 "spans": {str(t): [_span(s) for s in section.spans(t)] for t in section.trls},
                                 "uses": {str(t): [{"use": u, "lo": str(lo), "hi": str(hi)} for u, lo, hi in section.uses(t)]
                                          for t in section.trls}}
        for i, trl in enumerate(section.trls):
            for j, tf in enumerate(section.tfs):
                r = section.at(trl, tf)
                if r is not None:
                    entry["cells"].append(len(cells))
                    cells.append(_cell(r, i, j, interner, meta))
        sections.append(entry)
    _nearest_working(cells, sections)
    kinds = sorted({k for r in results for k in r.formatter}, key=lambda k: (k != "legacy", k))
    for c in cells:
        if "fmt" in c:
            c["fmt"] = [c["fmt"].get(k) for k in kinds]
    installed = {k: sorted({r.environment[k] for r in results if r.environment.get(k)}) for k in ("python", "torch")}
    devices = sorted({str(r.training.get("device")) for r in results if r.training and r.training.get("device")})
    counts = {s: sum(shown(r) == s for r in results) for s in SYMBOLS}  # a platform-bound cell counts apart
    return _finite({
        "meta": {str(k): v for k, v in meta.items()}, "installed": installed, "devices": devices, "counts": counts,
        "statuses": {s: {"sym": SYMBOLS[s], "glyph": GLYPHS[s], "text": LEGEND[s], "colour": COLOURS[s], "dark": COLOURS_DARK[s],
                         "name": status_name(s)}
                     for s in SYMBOLS},
        "words": {"notMeasured": NOT_MEASURED, "inferred": INFERRED, "drift": DRIFT,
                  "notMeasuredText": NOT_MEASURED_TEXT, "inferredText": INFERRED_TEXT,
                  "lockLine": environments.LOCK_WORDS, "bareLine": environments.BARE_WORDS,
                  "unpublishedLine": environments.UNPUBLISHED_WORDS},
        "probes": [{"key": p.key, "label": p.label, "words": probe_words(p.key, p.label), "about": p.about, "values": dict(p.values), "good": sorted(p.good),
                    "trainers": list(p.trainers), "unmeasured": sorted(p.unmeasured)} for p in registry.PROBES],
        "sets": fixed_sets.page_sets(), "platform": PLATFORM,
        "stageMarks": STAGE_MARKS, "stageLetters": STAGE_LETTERS, "keywordMarks": KEYWORD_MARKS,
        "resolutionWords": RESOLUTION_WORDS, "driftWords": DRIFT_WORDS, "faultWords": faults.KINDS,
        "keywords": list(KEYWORDS), "kinds": kinds, "adapterTitles": specs.adapter_titles(),
        "cases": interner.ordered(interner.cases),
        "caseSets": [list(s) for s in interner.ordered(interner.sets)],
        "fmts": interner.loaded(interner.tables), "envs": interner.loaded(interner.envs),
        "warnings": interner.loaded(interner.warnings), "details": interner.loaded(interner.details),
        "sections": sections, "cells": cells,
    })


def json_block(data: Any) -> str:
    """JSON that is inert inside <script>: no `<`, `>` or `&` survives, so `</script>` and `<!--` cannot occur."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def render(results: Sequence[CellResult], meta: dict[str, Any]) -> str:
    """The whole page as one string: inline CSS and JS, the data embedded, nothing fetched."""
    css = (_ASSETS / "page.css").read_text(encoding="utf-8")
    js = (_ASSETS / "page.js").read_text(encoding="utf-8")
    csp = (f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
           "img-src 'none'; base-uri 'none'; form-action 'none'")
    return _PAGE.format(csp=csp, css=css, js=js, data=json_block(page_data(results, meta)),
                        title=html.escape(plain(specs.report_title(results))))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title}: TRL x transformers</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}: TRL &times; transformers</h1>
<p id="measured-on"></p>
<dl id="meta"></dl>
<p id="counts"></p>
</header>
<noscript><p>This page draws its grid with JavaScript. COMPAT.md beside it holds the same grid as text.</p></noscript>
<p id="how">Each row is a TRL release and each column a transformers release, newest first; a cell is what one measured
pair did: &#x2713; trains (p: hand the tokenizer over as <code>processing_class=</code>, t: as <code>tokenizer=</code>),
&#x2717; installs but breaks (the letter says where), &#x2298; pip refuses the pair, &middot; not measured.
Click a cell for its install line and its error.</p>
<div id="controls">
<label>Find a version <input type="search" id="search" placeholder="0.23, 4.57 or a pip line" autocomplete="off" spellcheck="false"
 aria-describedby="search-help"></label>
<span id="search-help" class="muted">TRL versions narrow the rows, transformers versions the columns; paste a pip line or requirement</span>
<label id="probe-box">Colour by <select id="probe"></select></label>
<label><input type="checkbox" id="failing"> only failing cells</label>
<span id="shown" role="status" aria-live="polite"></span>
</div>
<details id="legend-box"><summary>Legend: every mark in words</summary><div id="legend"></div></details>
<main id="grids"></main>
<dialog id="detail" aria-labelledby="detail-title">
<div class="dialog-head">
<div class="dialog-title"><h2 id="detail-title"></h2><button type="button" id="detail-close" aria-label="Close">&times;</button></div>
<p id="detail-status" class="status-line"></p>
</div>
<div class="dialog-inner">
<div id="works-instead" hidden><span class="install-label" id="near-title"></span>
<div class="install-row"><code id="pip-ok"></code><button type="button" id="copy-ok">Copy</button></div>
<span id="copy-ok-note" class="copy-note" role="status" aria-live="polite"></span>
<p class="muted"><span id="near-note"></span> <button type="button" id="near-open" class="linkish">open that cell</button></p></div>
<div id="install"><span class="install-label" id="install-label">Install this pair</span>
<div class="install-row"><code id="pip"></code><button type="button" id="copy">Copy</button></div>
<span id="copy-note" class="copy-note" role="status" aria-live="polite"></span>
<p id="install-note" class="muted"></p></div>
<div id="detail-body"></div>
</div>
</dialog>
<script type="application/json" id="compat-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""

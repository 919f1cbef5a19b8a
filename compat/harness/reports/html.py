"""reports/compat.html: the grid as one self-contained page people click through.

Why a page: COMPAT.md answers "does this pair train?" with one symbol. The next
questions ("which class rejected `tokenizer`?", "which formatter cases broke?",
"how much memory?") are answered by compat.json, which nobody reads raw. The
page embeds that data, draws the grid, and opens any cell on click.

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
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from compat import probes as registry
from compat.contract import KEYWORDS, CellResult
from compat.harness.reports import grid
from compat.harness.reports.vocab import COLOURS, COLOURS_DARK, LEGEND, SYMBOLS

_ASSETS = Path(__file__).with_name("html_assets")


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
    """Case ids, case sets, outcome tables and environments repeat across cells: store each once."""

    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.sets: dict[tuple[int, ...], int] = {}
        self.tables: dict[str, int] = {}
        self.envs: dict[str, int] = {}

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

    def environment(self, env: Mapping[str, str]) -> int:
        return self.envs.setdefault(json.dumps(dict(env), sort_keys=True), len(self.envs))

    @staticmethod
    def ordered(table: Mapping[Any, int]) -> list[Any]:
        return sorted(table, key=table.__getitem__)


def pip_command(r: CellResult) -> str:
    return f"pip install 'trl=={r.trl}' 'transformers=={r.transformers}'"


def _span(s: grid.Span) -> dict[str, Any]:
    return {"lo": str(s.lo), "hi": str(s.hi), "measured": [str(v) for v in s.measured], "gaps": [str(v) for v in s.gaps]}


def page_data(results: Sequence[CellResult], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the page script needs: sections (one per trainer and resolution, newest first) of cells,
    each row's measured spans, and the probe registry the colouring iterates."""
    interner = _Interner()
    cells: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []
    for section in grid.sections(results):
        entry: dict[str, Any] = {"title": section.title, "trainer": section.trainer, "resolution": section.resolution,
                                 "forced": section.forced, "trls": [str(t) for t in section.trls],
                                 "tfs": [str(t) for t in section.tfs], "cells": [],
                                 "spans": {str(t): [_span(s) for s in section.spans(t)] for t in section.trls}}
        for i, trl in enumerate(section.trls):
            for j, tf in enumerate(section.tfs):
                r = section.at(trl, tf)
                if r is None:
                    continue
                d = replace(r, formatter={}).serialize()  # asdict would deep-copy every outcome table
                d.pop("cache_key", None)
                d.update(id=r.id, use=r.use_keyword(), row=i, col=j, pip=pip_command(r),
                         formatter=interner.formatter(r.formatter or {}),
                         environment=interner.environment(r.environment),
                         probes={p.key: r.probe(p.key) for p in registry.for_trainer(r.trainer)})
                entry["cells"].append(len(cells))
                cells.append(d)
        sections.append(entry)
    installed = {k: sorted({r.environment[k] for r in results if r.environment.get(k)}) for k in ("python", "torch")}
    devices = sorted({str(r.training.get("device")) for r in results if r.training and r.training.get("device")})
    counts = {s: sum(r.status == s for r in results) for s in SYMBOLS}
    return _finite({
        "meta": {str(k): v for k, v in meta.items()}, "installed": installed, "devices": devices, "counts": counts,
        "statuses": {s: {"sym": SYMBOLS[s], "text": LEGEND[s], "colour": COLOURS[s], "dark": COLOURS_DARK[s]}
                     for s in SYMBOLS},
        "probes": [{"key": p.key, "label": p.label, "about": p.about, "values": dict(p.values), "good": sorted(p.good),
                    "trainers": list(p.trainers)} for p in registry.PROBES],
        "keywords": list(KEYWORDS), "kinds": sorted({k for c in cells for k in c["formatter"]}),
        "cases": interner.ordered(interner.cases),
        "caseSets": [list(s) for s in interner.ordered(interner.sets)],
        "fmts": [json.loads(t) for t in interner.ordered(interner.tables)],
        "envs": [json.loads(e) for e in interner.ordered(interner.envs)],
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
    return _PAGE.format(csp=csp, css=css, js=js, data=json_block(page_data(results, meta)))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>KTO compatibility: TRL x transformers</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>KTO compatibility: TRL &times; transformers</h1>
<dl id="meta"></dl>
<p id="counts"></p>
</header>
<noscript><p>This page draws its grid with JavaScript. COMPAT.md beside it holds the same grid as text.</p></noscript>
<div id="controls">
<label>Colour by probe <select id="probe"></select></label>
<label><input type="checkbox" id="failing"> only failing cells</label>
<span id="shown" aria-live="polite"></span>
</div>
<div id="legend"></div>
<main id="grids"></main>
<dialog id="detail" aria-labelledby="detail-title"><div class="dialog-inner">
<div class="dialog-head"><h2 id="detail-title"></h2><button type="button" id="detail-close" aria-label="Close">&times;</button></div>
<div id="detail-body"></div>
</div></dialog>
<script type="application/json" id="compat-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""

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
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .report import LEGEND, SYMBOLS
from .results import KEYWORDS, CellResult

# Background colours per status, shared with the SVG. Never the only signal: every
# cell also carries its symbol and a word.
COLOURS = {"compatible": "#c9ecd0", "incompatible": "#f9c6bd", "unresolvable": "#dcdcdc", "error": "#ffe08a"}

_ASSETS = Path(__file__).with_name("html_assets")


def _vkey(text: str) -> tuple[int, Version | str]:
    """Version order, tolerating a string that is not a version (it sorts last)."""
    try:
        return (0, Version(text))
    except InvalidVersion:
        return (1, text)


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
    """Case ids, case sets and whole outcome tables repeat across cells: store each once, not 2000 times."""

    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.sets: dict[tuple[int, ...], int] = {}
        self.tables: dict[str, int] = {}

    def formatter(self, kinds: dict[str, dict[str, str]]) -> dict[str, int]:
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


def page_data(results: Sequence[CellResult], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything the page script needs, in grid order: sections (one per resolution) of cells."""
    interner = _Interner()
    cells: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []
    groups: dict[tuple[str, bool], list[CellResult]] = {}
    for r in results:
        groups.setdefault((r.resolution, r.forced), []).append(r)
    for (resolution, forced), group in sorted(groups.items()):
        trls = sorted({r.trl for r in group}, key=_vkey)
        tfs = sorted({r.transformers for r in group}, key=_vkey)
        title = f"Resolution: {resolution}" + (" (forced past TRL's declared requirements)" if forced else "")
        section = {"title": title, "trls": trls, "tfs": tfs, "cells": []}
        for r in sorted(group, key=lambda r: (_vkey(r.trl), _vkey(r.transformers))):
            d = replace(r, formatter={}).serialize()  # asdict would deep-copy every outcome table
            d.pop("cache_key", None)
            d.update(id=r.id, use=r.use_keyword(), row=trls.index(r.trl), col=tfs.index(r.transformers),
                     formatter=interner.formatter(r.formatter or {}))
            section["cells"].append(len(cells))
            cells.append(d)
        sections.append(section)
    installed = {k: sorted({r.environment[k] for r in results if r.environment.get(k)}) for k in ("python", "torch")}
    counts = {s: sum(r.status == s for r in results) for s in SYMBOLS}
    return _finite({
        "meta": {str(k): v for k, v in meta.items()}, "installed": installed, "counts": counts,
        "statuses": {s: {"sym": SYMBOLS[s], "text": LEGEND[s], "colour": COLOURS[s]} for s in SYMBOLS},
        "keywords": list(KEYWORDS), "kinds": sorted({k for c in cells for k in c["formatter"]}),
        "cases": sorted(interner.cases, key=interner.cases.__getitem__),
        "caseSets": [list(s) for s in sorted(interner.sets, key=interner.sets.__getitem__)],
        "fmts": [json.loads(t) for t in sorted(interner.tables, key=interner.tables.__getitem__)],
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
<noscript><p>This page draws its grid with JavaScript. reports/COMPAT.md holds the same grid as text.</p></noscript>
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

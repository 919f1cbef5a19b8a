"""reports/compat.svg: a picture of the grid for places that show images but not HTML
(a README, a PR comment).

matplotlib is an optional extra (`pip install 'kto-compat[plot]'`); `available()`
lets the report skip the picture without it. Only matplotlib's object API is
used (a Figure and its SVG canvas, no pyplot), so drawing sets no backend and
leaves no state in the process running the harness. Text is drawn as paths
with math parsing off: a version string like `$x$` stays literal and the file
needs no fonts. The bundled DejaVu font has no colour emoji, so each status
gets a glyph it does have, beside its colour and its word.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Sequence
from typing import Any

from compat.contract import CellResult
from compat.harness import specs
from compat.harness.reports import grid
from compat.harness.reports.vocab import COLOURS, GLYPHS, plain, shown, status_name

_CELL_W, _HEAD_W, _ROW_H, _PAD = 1.45, 1.15, 0.3, 0.15  # inches
_COMPACT_COLUMNS, _COMPACT_W = 12, 0.26


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def label(r: CellResult) -> str:
    """The same words as COMPAT.md: the keyword for compatible pairs, the stage for failing ones."""
    status, detail, _ = grid.words(r)
    return f"{GLYPHS.get(status, '?')} {detail or status}".rstrip()


def render(results: Sequence[CellResult], meta: dict[str, Any]) -> str:
    """SVG text, deterministic for the same results and meta (fixed hash salt, no date)."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    sections = grid.sections(results)
    ncols = max(len(s.tfs) for s in sections)
    # A wide grid (the full profile: ~45 transformers minors) is drawn as a heat map: glyphs only, a
    # narrow cell, column headings turned upright. The words stay in COMPAT.md and the page.
    compact = ncols > _COMPACT_COLUMNS
    cell_w = _COMPACT_W if compact else _CELL_W
    head_h = 0.55 if compact else _ROW_H
    width = _HEAD_W + cell_w * max(ncols, 3) + 2 * _PAD
    height = 0.5 + sum(0.35 + head_h + _ROW_H * len(s.trls) for s in sections) + 0.45
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "kto-compat", "font.size": 7.5}):
        fig = Figure(figsize=(width, height))
        FigureCanvasSVG(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)  # inches, top-down
        ax.axis("off")
        text = lambda x, y, s, **kw: ax.text(x, y, s, parse_math=False, **{"va": "center", **kw})  # noqa: E731
        title = f"{plain(specs.report_title(results))}: TRL × transformers ({len(results)} cells"
        title += f", profile {plain(meta['profile'])}" if meta.get("profile") else ""
        title += f", {plain(meta['generated'])})" if meta.get("generated") else ")"
        text(_PAD, 0.25, title, fontsize=10, weight="bold")
        y = 0.5
        for section in sections:
            trls, tfs = section.trls, section.tfs
            text(_PAD, y + 0.17, section.title, fontsize=8.5, weight="bold")
            y += 0.35
            text(_PAD + _HEAD_W - 0.06, y + head_h / 2, "TRL \\ transformers", ha="right", color="#555")
            for j, tf in enumerate(tfs):
                if compact:
                    text(_PAD + _HEAD_W + cell_w * (j + 0.5), y + head_h - 0.04, str(tf), ha="center",
                         rotation=90, fontsize=6, weight="bold", va="bottom")
                else:
                    text(_PAD + _HEAD_W + cell_w * (j + 0.5), y + head_h / 2, str(tf), ha="center", weight="bold")
            for i, trl in enumerate(trls):
                text(_PAD + _HEAD_W - 0.06, y + head_h + _ROW_H * (i + 0.5), str(trl), ha="right", weight="bold")
            for r in section.cells.values():
                x0 = _PAD + _HEAD_W + cell_w * tfs.index(r.transformers)
                y0 = y + head_h + _ROW_H * trls.index(r.trl)
                ax.add_patch(Rectangle((x0 + 0.02, y0 + 0.02), cell_w - 0.04, _ROW_H - 0.04,
                                       facecolor=COLOURS.get(shown(r), "#ffffff"), edgecolor="#00000040"))
                if compact:
                    text(x0 + cell_w / 2, y0 + _ROW_H / 2, GLYPHS.get(shown(r), "?"), ha="center", fontsize=6)
                else:
                    text(x0 + 0.08, y0 + _ROW_H / 2, label(r))
            for i, trl in enumerate(trls):  # a position no cell measured says nothing: marked, never coloured
                for j, tf in enumerate(tfs):
                    if section.at(trl, tf) is None:
                        text(_PAD + _HEAD_W + cell_w * (j + 0.5), y + head_h + _ROW_H * (i + 0.5), "·", ha="center",
                             color="#888")
            y += head_h + _ROW_H * len(trls)
        x = _PAD
        for status, glyph in GLYPHS.items():
            ax.add_patch(Rectangle((x, y + 0.12), 0.22, 0.2, facecolor=COLOURS[status], edgecolor="#00000040"))
            text(x + 0.11, y + 0.22, glyph, ha="center")
            text(x + 0.28, y + 0.22, status_name(status))
            x += 0.4 + 0.06 * len(status_name(status))
        text(x, y + 0.22, "·  not measured", color="#555")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()

"""The one writer that knows every report format.

``write`` renders compat.json (the contract), COMPAT.md and GRIDS.md, compat.html,
junit.xml and (with matplotlib) compat.svg from the same cells, and puts
them in place together (files.write_set): a crash while rendering leaves the
previous complete set. Renderers share the grid (grid.py) and the words,
symbols and escaping (vocab.py); none imports another.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from compat.contract import CellResult
from compat.harness import files
from compat.harness.config import ConfigError
from compat.harness.documents import dumps_document
from compat.harness.files import write_set
from compat.harness.reports import html, junit, markdown, plot

FILES = ("compat.json", "COMPAT.md", "GRIDS.md", "compat.html", "junit.xml", "compat.svg")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(out: Path, results: Sequence[CellResult], meta: Mapping[str, Any], *, step_summary: bool = False,
          document: bool = True) -> list[str]:
    """Every report of ``results`` into ``out``, together. ``meta["generated"]`` is the measurement
    time and is kept as given. With ``document=False`` the input compat.json is left untouched
    (re-rendering never rewrites what was measured).

    The files depend only on the cells and the metadata, never on the order the cells came in nor
    on when they were rendered: rendering the same table twice gives the same bytes, so a run that
    measured nothing new changes no file."""
    # A log is linked only where its file is beside the reports (a page never links a missing file).
    results = sorted((c if not c.log or (out / c.log).is_file() else replace(c, log=None) for c in results),
                     key=lambda c: (c.key, c.id))
    meta = {"generated": now(), **{k: v for k, v in meta.items() if k != "rendered"}}
    shown = {k: v for k, v in meta.items() if k != "measured"}  # the per-cell dates live in compat.json
    files: dict[str, str] = {
        "COMPAT.md": markdown.document(results, shown),
        markdown.GRIDS: markdown.grids_document(results, shown),
        "compat.html": html.render(results, shown),
        "junit.xml": junit.document(results),
    }
    if document:
        files["compat.json"] = dumps_document(meta, results)
    if plot.available():
        files["compat.svg"] = plot.render(results, shown)
    else:
        (out / "compat.svg").unlink(missing_ok=True)  # a stale picture would contradict the grid
        print("compat: matplotlib not installed; skipped compat.svg (pip install 'kto-compat[plot]')", file=sys.stderr)
    write_set(out, files)
    if step_summary:
        append_step_summary(results, meta)
    return sorted(files)


def append_step_summary(results: Sequence[CellResult], meta: Mapping[str, Any],
                        environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append the summary to $GITHUB_STEP_SUMMARY when GitHub Actions set it; elsewhere do nothing."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    try:  # the reports are written already: a summary that cannot be appended is a note, not a failed run
        real, _ = files.target(path, "GITHUB_STEP_SUMMARY")
        with real.open("a", encoding="utf-8") as fh:
            fh.write(markdown.summary(results, meta) + "\n")
    except (OSError, ConfigError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"compat: note: GITHUB_STEP_SUMMARY {path}: not appended: {why}", file=sys.stderr)
        return None
    return path

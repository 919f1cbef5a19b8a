"""Cell logs published beside the table: gzip-compressed, within a size budget, or not linked at all.

A cell's `log` field is a link on the page, so it may only name a file that is
there: a merged report links each cell to ``logs/<cell id>.log.gz`` when that
file was written, and to nothing otherwise (a log lost with an expired
artifact, or one over the budget). File names come from the parsed cell ids,
never from the input's `log` text. Compression is deterministic (no name, no
time in the gzip header), so an unchanged log is an unchanged file.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from compat.contract import CellResult
from compat.harness.files import atomic_write

BUDGET_BYTES = 40 * 2**20  # all published logs together; the full profile's ~2,000 take about a quarter
MAX_LOG_BYTES = 2 * 2**20  # one cell's log before compression; a longer one keeps its tail (the error)


def _compressed(directory: Path, cell_id: str) -> bytes | None:
    """The log of ``cell_id`` in ``directory``, gzip-compressed: a published .log.gz as it is, a
    plain .log compressed here; None when neither is there."""
    packed, plain = directory / "logs" / f"{cell_id}.log.gz", directory / "logs" / f"{cell_id}.log"
    # A symlinked log is never read: following it would publish whatever file it points at.
    packed, plain = (None if p.is_symlink() else p for p in (packed, plain))  # type: ignore[assignment]
    if packed is not None and packed.is_file():
        return packed.read_bytes()
    if plain is not None and plain.is_file():
        data = plain.read_bytes()
        if len(data) > MAX_LOG_BYTES:
            data = b"[... log cut to its last %d bytes ...]\n" % MAX_LOG_BYTES + data[-MAX_LOG_BYTES:]
        return gzip.compress(data, mtime=0)
    return None


def publish(directories: Sequence[Path], out: Path, cells: Sequence[CellResult],
            budget: int = BUDGET_BYTES) -> list[CellResult]:
    """Write each cell's log to ``out/logs/<id>.log.gz`` from the first of ``directories`` that has
    it (put the newest run first), failing cells first while the budget lasts; return the cells
    with ``log`` naming the file written, or None. Files of cells no longer in the table are removed."""
    target = out / "logs"
    order = sorted(cells, key=lambda c: (not c.failed, c.key, c.id))  # a failing cell's log matters most
    used, linked = 0, {}
    for cell in order:
        data = next((d for d in (_compressed(src, cell.id) for src in directories) if d is not None), None)
        if data is None or used + len(data) > budget:
            continue
        used += len(data)
        linked[cell.id] = f"logs/{cell.id}.log.gz"
        # atomic_write writes text with surrogateescape: decoding likewise gives back the same bytes.
        atomic_write(target / f"{cell.id}.log.gz", data.decode("utf-8", "surrogateescape"))
    if target.is_dir():
        for stale in target.iterdir():
            if stale.name.removesuffix(".log.gz") not in linked:
                stale.unlink()
    return [replace(c, log=linked.get(c.id)) for c in cells]

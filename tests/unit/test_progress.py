"""Progress reporting: plain lines for CI logs (with ETA), one redrawn line on a terminal."""

from __future__ import annotations

import io

from packaging.version import Version

from compat.contract import CellResult, Failure
from compat.harness.plan import Cell
from compat.harness.progress import ProgressReporter, eta_seconds, fmt_duration

CELLS = [Cell(Version(t), Version("4.46.3")) for t in ("0.12.0", "0.12.2", "0.13.0", "1.0.0", "1.1.0")]


def result(cell: Cell, status: str = "compatible", seconds: float = 0.0) -> CellResult:
    failure = Failure("construct", "TypeError: x") if status != "compatible" else None
    return CellResult(str(cell.trl), str(cell.transformers), "latest", status, failure=failure, seconds=seconds)


def test_eta_uses_only_cells_that_really_ran():
    assert eta_seconds([], 5, 2) is None
    assert eta_seconds([20.0, 40.0], 4, 2) == 60.0
    assert [fmt_duration(s) for s in (None, 5, 125, 7300)] == ["?", "5s", "2m05s", "2h01m"]


def test_plain_mode_prints_lines_with_counts_running_failures_and_eta():
    out = io.StringIO()
    rep = ProgressReporter(len(CELLS), jobs=2, stream=out)
    assert rep.tty is False  # StringIO is not a terminal
    rep.finished(CELLS[0], result(CELLS[0]), cached=True)
    rep.starting(CELLS[1])
    rep.starting(CELLS[2])
    rep.finished(CELLS[1], result(CELLS[1], "incompatible", 30.0), cached=False)
    rep.finished(CELLS[2], result(CELLS[2], seconds=10.0), cached=False)
    rep.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0] == "compat: [1/5] trl0.12.0-tf4.46.3: compatible (cached); 1/5 done, 0 not compatible, running: -, ETA ?"
    assert lines[2] == ("compat: start trl0.13.0-tf4.46.3 (1/5 done, 0 not compatible, "
                        "running: trl0.12.2-tf4.46.3, trl0.13.0-tf4.46.3, ETA ?)")
    # mean of real cells 30s x 3 left / 2 jobs = 45s; the cached cell does not pull the mean down
    assert lines[3].endswith("incompatible at construct (30.0s); 2/5 done, 1 not compatible, running: trl0.13.0-tf4.46.3, ETA 45s")
    # mean 20s x 2 left / 2 jobs = 20s
    assert lines[4].endswith("3/5 done, 1 not compatible, running: -, ETA 20s")


def test_tty_mode_redraws_one_status_line_and_ends_on_a_clean_line():
    out = io.StringIO()
    rep = ProgressReporter(2, jobs=1, stream=out, tty=True)
    rep.starting(CELLS[0])
    rep.finished(CELLS[0], result(CELLS[0], seconds=12.0), cached=False)
    rep.starting(CELLS[1])
    rep.close()
    text = out.getvalue()
    assert text.startswith("\r\x1b[Kcompat: 0/2 done, 0 not compatible, running: trl0.12.0-tf4.46.3, ETA ?")
    assert "\r\x1b[Kcompat: [1/2] trl0.12.0-tf4.46.3: compatible (12.0s)\n" in text
    assert "running: trl0.12.2-tf4.46.3, ETA 12s" in text
    assert text.endswith("\r\x1b[K") and text.count("\n") == 1  # finished cells only; the status line is redrawn


def test_the_count_says_not_compatible_and_keeps_harness_errors_apart():
    out = io.StringIO()
    rep = ProgressReporter(3, jobs=1, stream=out)
    rep.finished(CELLS[0], result(CELLS[0], "unresolvable"), cached=True)
    rep.finished(CELLS[1], result(CELLS[1], "error"), cached=True)
    assert "2/3 done, 1 not compatible, 1 harness error, running" in out.getvalue().splitlines()[-1]
    assert "failed" not in out.getvalue()

"""The cell suite's collector settings (tests/cell/conftest.py), checked in a subprocess: the collector
is off while the stack imports, and never outside that, whether discovery works or breaks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SESSION_START = """
import gc, sys
sys.path.insert(0, "tests/cell")
import conftest
assert gc.isenabled(), "importing the conftest turned the collector off (a run that reaches it late never turns it on)"
import compat.cell.discover as discover
during = []
def discover_once(*args, **kwargs):
    during.append(gc.isenabled())
    if {fail}:
        raise RuntimeError("discovery broke")
discover.discover_once = discover_once
try:
    conftest.pytest_sessionstart(None)
except RuntimeError:
    assert {fail}, "discovery's error was raised, yet discovery did not fail"
else:
    assert not {fail}, "discovery's error was swallowed"
assert during == [False], "the collector was on while the stack imported"
assert gc.isenabled(), "the collector stayed off after the imports"
assert gc.get_freeze_count() > 0, "what the imports built was not frozen"
assert gc.get_threshold()[0] > 700, "the first generation is collected as often as by default"
"""


def test_the_collector_is_off_while_the_stack_imports_and_only_then():
    for fail in (False, True):
        proc = subprocess.run([sys.executable, "-c", SESSION_START.format(fail=fail)], cwd=REPO, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]

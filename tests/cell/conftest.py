"""Cell-side plugin: collects what the in-cell tests observe into one JSON file.

This runs inside a cell environment holding one TRL/transformers pair. Tests
record observations through the ``observe`` fixture; at session end they are
written atomically to ``$COMPAT_CELL_RESULT`` for the host to read. Keeping
the observations apart from pass/fail lets a test *measure* that a keyword is
rejected without that measurement being a test failure.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

# The host puts the checkout on PYTHONPATH; make `import compat` work from a bare pytest run too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

_OBS: dict[str, Any] = {"failures": {}, "warnings": [], "tests": {}}

_DISTS = ("trl", "transformers", "torch", "accelerate", "datasets", "tokenizers", "pyarrow", "numpy", "peft", "jinja2")


class Observations:
    """Write-only view of the cell's observation record."""

    def set(self, key: str, value: Any) -> None:
        _OBS[key] = value

    def merge(self, key: str, sub: str, value: Any) -> None:
        _OBS.setdefault(key, {})[sub] = value

    def warn(self, stage: str, category: str, message: str) -> None:
        entry = {"stage": stage, "category": category, "message": message.splitlines()[0][:500] if message else ""}
        if entry not in _OBS["warnings"]:
            _OBS["warnings"].append(entry)

    def fail(self, stage: str, exc: BaseException) -> None:
        """Record the first failure of a stage with where it was raised."""
        _OBS["failures"].setdefault(stage, describe(exc))


def raised_by(exc: BaseException) -> str | None:
    """`module.Class.function` of the innermost frame that raised ``exc``."""
    tb = exc.__traceback__
    frame = None
    while tb is not None:
        frame = tb.tb_frame
        tb = tb.tb_next
    if frame is None:
        return None
    module = frame.f_globals.get("__name__", "?")
    func = frame.f_code.co_name
    self_obj = frame.f_locals.get("self")
    cls = getattr(frame.f_code, "co_qualname", func).rsplit(".", 1)[0] if "." in getattr(frame.f_code, "co_qualname", "") else None
    if cls is None and self_obj is not None:
        cls = type(self_obj).__name__
    return ".".join(p for p in (module, cls, func) if p)


def describe(exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip().splitlines()
    return {
        "type": type(exc).__name__,
        "message": f"{type(exc).__name__}: {text[0] if text else ''}"[:1000],
        "raised_by": raised_by(exc),
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


@pytest.fixture(scope="session")
def observe() -> Observations:
    return Observations()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _OBS["tests"][report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("COMPAT_CELL_RESULT")
    if not target:
        return
    env = {"python": sys.version.split()[0]}
    for dist in _DISTS:
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    _OBS["environment"] = env
    _OBS["pytest_exit"] = int(exitstatus)
    path = Path(target)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_OBS, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)

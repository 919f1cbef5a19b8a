"""Cell-side plugin: collects what the in-cell tests observe into one JSON file.

This runs inside a cell environment holding one TRL/transformers pair. Tests
record observations through the ``observe`` fixture; at session end they are
written atomically to ``$COMPAT_CELL_RESULT`` for the host to read. Keeping
the observations apart from pass/fail lets a test *measure* that a keyword is
rejected without that measurement being a test failure.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

# The host puts the checkout on PYTHONPATH; make `import compat` work from a bare pytest run too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Cells run offline: anything that tries the hub fails loudly instead of downloading.
# Set before any test module imports huggingface_hub, which reads these at import.
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "WANDB_MODE": "disabled",
        "TOKENIZERS_PARALLELISM": "false",
    }
)

_OBS: dict[str, Any] = {"failures": {}, "warnings": [], "tests": {}}

_DISTS = ("trl", "transformers", "torch", "accelerate", "datasets", "tokenizers", "pyarrow", "numpy", "peft", "jinja2")


class Observations:
    """The cell's observation record: tests write measurements, later tests may read them.

    Reading exists so a test can act on what earlier modules measured (the
    adapter test builds findings from this cell's own keyword/import/format
    measurements) instead of measuring it all again.
    """

    def set(self, key: str, value: Any) -> None:
        _OBS[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        """A deep copy of one recorded value, so readers cannot change the record."""
        return copy.deepcopy(_OBS.get(key, default))

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of everything recorded so far (the shape the host reads)."""
        return copy.deepcopy(_OBS)

    def merge(self, key: str, sub: str, value: Any) -> None:
        _OBS.setdefault(key, {})[sub] = value

    def warn(self, stage: str, category: str, message: str) -> None:
        entry = {"stage": stage, "category": category, "message": message.splitlines()[0][:500] if message else ""}
        if entry not in _OBS["warnings"]:
            _OBS["warnings"].append(entry)

    def fail(self, stage: str, exc: BaseException, within: type | None = None) -> None:
        """Record the first failure of a stage with where it was raised."""
        _OBS["failures"].setdefault(stage, describe(exc, within))


# Python's own argument-binding errors: "f() got an unexpected keyword argument 'x'",
# "f() takes 1 positional argument but 2 were given", "f() missing 1 required ...".
_BINDING = re.compile(
    r"^(?P<qualname>[\w.<>]+)\(\) (?:got an unexpected keyword argument '(?P<keyword>\w+)'"
    r"|takes .* positional arguments? but .* given|missing \d+ required)"
)


def _binding_callee(exc: BaseException, frame: Any, within: type | None) -> str | None:
    """Who refused the arguments when Python's argument binding raised the TypeError.

    Binding fails before the callee gets a frame, so the innermost frame is the
    *caller* (e.g. KTOTrainer.__init__ calling super().__init__). The message
    names the callee's qualname; find its class in the caller's (or
    ``within``'s) MRO, skipping forwarders that take the refused keyword or ``**kwargs``.
    """
    match = _BINDING.match(str(exc)) if isinstance(exc, TypeError) else None
    if match is None:
        return None
    qualname, keyword = match.group("qualname"), match.group("keyword")
    owner, _, func = qualname.rpartition(".")
    classes: list[type] = []
    self_obj = frame.f_locals.get("self") if frame is not None else None
    if self_obj is not None:
        classes += type(self_obj).__mro__
    if within is not None:
        classes += within.__mro__
    for cls in classes:
        fn = vars(cls).get(func)
        if cls.__qualname__ != owner or fn is None:
            continue
        if keyword is not None and _takes_keyword(fn, keyword):
            continue
        return f"{cls.__module__}.{qualname}"
    return None


def _takes_keyword(fn: Any, keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def raised_by(exc: BaseException, within: type | None = None) -> str | None:
    """`module.Class.function` that raised ``exc``.

    Usually the innermost traceback frame; for argument-binding
    TypeErrors, the function whose arguments were refused (see _binding_callee),
    searched in ``within``'s class hierarchy when the caller has no ``self``.
    """
    tb = exc.__traceback__
    frame = None
    while tb is not None:
        frame = tb.tb_frame
        tb = tb.tb_next
    callee = _binding_callee(exc, frame, within)
    if callee is not None:
        return callee
    if frame is None:
        return None
    module = frame.f_globals.get("__name__", "?")
    func = frame.f_code.co_name
    self_obj = frame.f_locals.get("self")
    cls = getattr(frame.f_code, "co_qualname", func).rsplit(".", 1)[0] if "." in getattr(frame.f_code, "co_qualname", "") else None
    if cls is None and self_obj is not None:
        cls = type(self_obj).__name__
    return ".".join(p for p in (module, cls, func) if p)


def describe(exc: BaseException, within: type | None = None) -> dict[str, Any]:
    text = str(exc).strip().splitlines()
    return {
        "type": type(exc).__name__,
        "message": f"{type(exc).__name__}: {text[0] if text else ''}"[:1000],
        "raised_by": raised_by(exc, within),
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


@pytest.fixture(scope="session")
def observe() -> Observations:
    return Observations()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Import KTO before any test module can: import warnings show only once.

    Discovery never raises; test_kto reads the cached result and records it.
    """
    from compat.kto_import import discover_kto_once

    discover_kto_once()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run modules that set ``USES_CELL_MEASUREMENTS = True`` last, keeping order otherwise.

    They read what the measuring modules recorded; file names alone would put
    ``test_adapter.py`` first.
    """
    items.sort(key=lambda item: bool(getattr(getattr(item, "module", None), "USES_CELL_MEASUREMENTS", False)))


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

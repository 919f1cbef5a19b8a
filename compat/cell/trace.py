"""Who raised an error, and whether a failure is the pair's or a moved dependency's.

Cell code: runs inside the pair's environment, where the traceback's frames
and the installed distributions' metadata are at hand. The answers land in
the cell's failure record (``raised_by``, ``drift``), so the report can name
the class that refused a keyword and tell "trl needs rich, which nothing
brings any more" apart from a fault of trl or transformers themselves.
"""

from __future__ import annotations

import inspect
import re
import traceback
from importlib import metadata
from typing import Any

from compat.cell.discover import root_cause

__all__ = ["describe", "drift_of", "raised_by"]

# Python's own argument-binding errors: "f() got an unexpected keyword argument 'x'",
# "f() takes 1 positional argument but 2 were given", "f() missing 1 required ...".
_BINDING = re.compile(
    r"^(?P<qualname>[\w.<>]+)\(\) (?:got an unexpected keyword argument '(?P<keyword>\w+)'"
    r"|takes .* positional arguments? but .* given|missing \d+ required)"
)
PAIR = ("trl", "transformers")
_OURS = (*PAIR, "torch", "compat")


def _takes_keyword(fn: Any, keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


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


def _innermost(exc: BaseException) -> Any:
    tb, frame = exc.__traceback__, None
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    return frame


def where(frame: Any) -> str | None:
    """``module.Class.function`` of a frame."""
    if frame is None:
        return None
    module = frame.f_globals.get("__name__", "?")
    qual = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
    cls = qual.rsplit(".", 1)[0] if "." in qual else None
    if cls is None and frame.f_locals.get("self") is not None:
        cls = type(frame.f_locals["self"]).__name__
    return ".".join(p for p in (module, cls, frame.f_code.co_name) if p)


def raised_by(exc: BaseException, within: type | None = None) -> str | None:
    """`module.Class.function` that raised ``exc``: the innermost frame, or for an
    argument-binding TypeError the function whose arguments were refused."""
    frame = _innermost(exc)
    return _binding_callee(exc, frame, within) or where(frame)


def _importer(exc: BaseException) -> str | None:
    """The module whose ``import`` statement failed: the innermost frame outside importlib."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if not name.startswith(("importlib", "_frozen_importlib")) and name != "compat.cell.discover":
            found = name
        tb = tb.tb_next
    return found


def _dist_of(module: str | None) -> str | None:
    if not module:
        return None
    top = module.split(".")[0]
    dists = metadata.packages_distributions().get(top)
    return dists[0] if dists else top


def _declares(dist: str | None, package: str) -> bool:
    """Does ``dist``'s metadata require ``package`` (any marker, extras included)?"""
    if not dist:
        return False
    wanted = re.sub(r"[-_.]+", "-", package).lower()
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return False
    names = {re.sub(r"[-_.]+", "-", re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0]).lower() for r in requires}
    return wanted in names


def drift_of(exc: BaseException) -> dict[str, Any] | None:
    """A failure caused by a third-party package that moved under the pair, described; else None.

    - ``undeclared-dependency``: a module is missing that the importing
      distribution does not declare (trl importing ``rich``, which tyro used to bring).
    - ``moved-api``: a name was missing from a third-party module (an API that moved);
    - ``third-party``: the failure was raised inside a third-party package (it
      refused its own dependencies, say pyarrow finding a NumPy too old for it).
    """
    exc = root_cause(exc)
    importer = _importer(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        package = exc.name.split(".")[0]
        if package in _OURS:
            return None
        importer_dist = _dist_of(importer)
        kind = "undeclared-dependency" if not _declares(importer_dist, package) else "unknown"
        return {"kind": kind, "package": package, "importer": importer}
    if isinstance(exc, ImportError) and exc.name and exc.name.split(".")[0] not in _OURS:
        return {"kind": "moved-api", "package": exc.name.split(".")[0], "importer": importer}
    origin = (where(_innermost(exc)) or "").split(".")[0]
    if origin and origin not in _OURS and origin not in ("importlib", "builtins", "?"):
        return {"kind": "third-party", "package": origin, "importer": importer}
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:1000]


def describe(exc: BaseException, within: type | None = None) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": first_line(exc),
        "raised_by": raised_by(exc, within),
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }

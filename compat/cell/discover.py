"""Find where the installed TRL keeps a trainer's config and trainer classes, by trying.

Cell code, also used by the adapter. TRL has moved KTO between the top level
and ``trl.experimental.kto`` and back, each time leaving a subclass behind at
the old place whose ``__init__(*args, **kwargs)`` warns and forwards. Which of
the two is the real class is therefore read from the class hierarchy: the shim
subclasses the real one. No version numbers appear here on purpose - the
answer must come from the installed package, not from release notes.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from dataclasses import dataclass, field

__all__ = ["KTO_CANDIDATES", "Discovery", "discover", "discover_kto_once", "root_cause"]

# Where KTOConfig/KTOTrainer may live, most preferred first when two locations hold
# the very same classes. The adapter imports only these; compat.trainers.kto reads them.
KTO_CANDIDATES: tuple[str, ...] = (
    "trl",
    "trl.experimental.kto",
    "trl.trainer",
    "trl.trainer.kto_trainer",
    "trl.experimental.kto.kto_trainer",
)


@dataclass(frozen=True)
class Located:
    """One location that yielded both classes."""

    path: str
    config: type
    trainer: type


@dataclass(frozen=True)
class Discovery:
    """What discovery found: the chosen classes, or why there are none."""

    path: str | None
    config: type | None
    trainer: type | None
    # (location, warning category name, message) seen while importing.
    warnings: tuple[tuple[str, str, str], ...] = ()
    error: BaseException | None = None
    found: tuple[str, ...] = field(default=())
    # Locations whose classes merely subclass-and-forward to the chosen ones.
    shims: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.trainer is not None


def root_cause(exc: BaseException) -> BaseException:
    """Follow explicit ``raise ... from`` links to the error that started it.

    Lazy modules wrap a failed submodule import in a RuntimeError whose first
    line says only "look up to see its traceback"; the cause is the real error.
    """
    seen: set[int] = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def _absent(path: str, exc: BaseException) -> bool:
    """True when ``exc`` only says this location does not exist here."""
    if isinstance(exc, AttributeError):
        return True
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return path == exc.name or path.startswith(exc.name + ".")
    return False


def _try(path: str, names: tuple[str, str]) -> Located:
    module = importlib.import_module(path)
    return Located(path, getattr(module, names[0]), getattr(module, names[1]))


def _is_shim(loc: Located, others: list[Located]) -> bool:
    """A location is a shim when its classes strictly subclass another's."""
    for other in others:
        for mine, theirs in ((loc.trainer, other.trainer), (loc.config, other.config)):
            if mine is not theirs and issubclass(mine, theirs):
                return True
    return False


def discover(candidates: tuple[str, ...] = KTO_CANDIDATES, names: tuple[str, str] = ("KTOConfig", "KTOTrainer")) -> Discovery:
    """Import every candidate location and pick the one holding the real ``names`` (config, trainer) classes."""
    found: list[Located] = []
    seen_warnings: list[tuple[str, str, str]] = []
    errors: list[tuple[str, BaseException]] = []
    for path in candidates:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                found.append(_try(path, names))
            except Exception as exc:  # any import-time failure is a finding
                errors.append((path, exc))
        seen_warnings += [(path, w.category.__name__, str(w.message)) for w in caught]
    real = [loc for loc in found if not _is_shim(loc, found)]
    if not found:
        return Discovery(None, None, None, tuple(seen_warnings), _most_relevant(errors))
    chosen = (real or found)[0]
    return Discovery(
        path=chosen.path,
        config=chosen.config,
        trainer=chosen.trainer,
        warnings=tuple(seen_warnings),
        found=tuple(loc.path for loc in found),
        shims=tuple(loc.path for loc in found if loc not in real),
    )


def _most_relevant(errors: list[tuple[str, BaseException]]) -> BaseException | None:
    """The first error that is more than "this location does not exist"."""
    for path, exc in errors:
        if not _absent(path, exc):
            return root_cause(exc)
    return root_cause(errors[0][1]) if errors else None


@functools.cache
def discover_once(candidates: tuple[str, ...] = KTO_CANDIDATES, names: tuple[str, str] = ("KTOConfig", "KTOTrainer")) -> Discovery:
    """Discovery is an import: its warnings appear only the first time, so keep them."""
    return discover(candidates, names)


def discover_kto_once() -> Discovery:
    return discover_once()

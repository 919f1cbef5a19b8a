"""Trainer specs: what the cell suite needs to know to measure one TRL trainer.

A spec is the provider side of the suite (as in resolvelib's provider /
algorithm / reporter split): it says where the classes may live, what they
are called, which keywords and config spellings exist, what a training row
looks like and how a tiny run is configured. The algorithm - discover the
classes, probe the keywords, train, record - is shared cell code
(compat/cell/). A new trainer is one module here plus its cell test module
under tests/cell/<name>/.

Cell code that the host also reads (for names and validation): no ML imports.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compat.cell.config_names import CONFIG_RENAMES
from compat.contract import KEYWORDS

__all__ = ["TrainerSpec", "get", "names"]


@dataclass(frozen=True)
class TrainerSpec:
    """One TRL trainer, declared."""

    name: str  # "kto": the cell id suffix, --only trainer=, matrix.toml trainers
    title: str  # "KTOTrainer" in prose
    config_class: str
    trainer_class: str
    candidates: tuple[str, ...]  # modules that may hold both classes, most preferred first
    rows: Callable[[int, bool], list[dict[str, Any]]]  # rows(n, conversational) in the trainer's dataset shape
    recipe: Mapping[str, Any] = field(default_factory=dict)  # config fields of the tiny run beyond the shared ones
    keywords: tuple[str, ...] = KEYWORDS
    # (current, older) spellings of TrainingArguments fields every trainer's config inherits:
    # the tiny run passes only the current one where both exist.
    config_aliases: tuple[tuple[str, str], ...] = CONFIG_RENAMES
    batch: int = 4
    # Constructor keywords that take a further model (the tiny run builds each as a copy of the policy).
    models: tuple[str, ...] = ()
    adapter: bool = False  # the kto-compat adapter covers this trainer (its verdict needs the adapter check)


@functools.cache
def _specs() -> dict[str, TrainerSpec]:
    """Every module of this package that defines SPEC: adding a trainer needs no list edited."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, TrainerSpec):
            found[spec.name] = spec
    return found


def names() -> tuple[str, ...]:
    return tuple(sorted(_specs()))


def get(name: str) -> TrainerSpec:
    try:
        return _specs()[name]
    except KeyError:
        raise KeyError(f"unknown trainer {name!r}; one of {', '.join(names())}") from None

"""A cell's axes, iterated in one place: trl and transformers (the grid a person reads, TRL rows x
transformers columns) and any further distributions a grid of matrix.toml names (datasets, torch, ...).

Plans (`plan.Cell`) and results (`CellResult`) both expose ``all_axes`` (name -> Version, trl and
transformers first, further axes in grid order); everything downstream reads axes through here rather
than spelling out the pair.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from packaging.utils import canonicalize_name
from packaging.version import Version

from compat.contract import AXES

DEFAULT = AXES  # trl and transformers: the grid a person reads
TORCH = "torch"

# PEP 508 distribution names (https://packaging.python.org/specifications/name-normalization/).
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


class HasAxes(Protocol):
    @property
    def all_axes(self) -> Mapping[str, Version]: ...


def canonical(raw: object) -> str | None:
    """``raw`` as a canonical (PEP 503) distribution name, or None when it is not a valid one."""
    if not isinstance(raw, str) or not _NAME.match(raw):
        return None
    return str(canonicalize_name(raw))


def further(x: HasAxes) -> tuple[tuple[str, Version], ...]:
    """The axes beyond trl and transformers, in grid order: what a section of the grid is drawn per."""
    return tuple((k, v) for k, v in x.all_axes.items() if k not in DEFAULT)


def strings(axes: tuple[tuple[str, Version], ...]) -> dict[str, str]:
    """Further axes as ``CellResult.axes`` holds them (name -> version string)."""
    return {k: str(v) for k, v in axes}


def pins(x: HasAxes) -> dict[str, str]:
    """Every axis of the cell, as name -> exact version string (requirements, overrides, messages)."""
    return {k: str(v) for k, v in x.all_axes.items()}


def named(axes: Mapping[str, object], show: Callable[[object], str] = str) -> str:
    """``trl 0.12.2 + transformers 4.46.3 + datasets 3.6.0``: how reports and `check` name a cell's axes."""
    return " + ".join(f"{name} {show(v)}" for name, v in axes.items())


def label(axes: tuple[tuple[str, Any], ...]) -> str:
    """``datasets 3.6.0, torch 2.5.1`` (empty for a two-axis cell)."""
    return ", ".join(f"{k} {v}" for k, v in axes)


def spec(x: HasAxes) -> str:
    """``trl==A,transformers==B[,datasets==C]``: the form ``--only`` and ``check --pair`` read."""
    return ",".join(f"{k}=={v}" for k, v in x.all_axes.items())


"""A cell measured an environment, not a pair in the abstract.

This module keeps what each KTO cell ran with (the distributions its suite
recorded), spells the install line that reproduces it, and says how another
environment differs from it. Host side: it reads package metadata and
findings, and never imports the ML stack.

findings.json carries the table built here (``environments``): each distinct
set of distributions once, and per cell its pair, resolution, status and set.
"""

from __future__ import annotations

import re
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from compat.contract import CellResult, Status
from compat.harness import specs

ROOTS = ("trl", "transformers")  # the stack a cell measures; what their requirements reach matters at run time
_LOCAL = re.compile(r"^(?P<public>[^+]+)\+(?P<local>.+)$")


@dataclass(frozen=True)
class Measured:
    """One KTO cell as the findings keep it: the pair, how it was resolved, its status, what it ran with."""

    trl: str
    transformers: str
    resolution: str
    status: str
    environment: tuple[tuple[str, str], ...] = ()  # (distribution, version), python included, sorted
    released: str = ""

    @property
    def env(self) -> dict[str, str]:
        return dict(self.environment)

    @property
    def installed(self) -> bool:
        return bool(self.environment)


def table(results: Sequence[CellResult]) -> dict[str, Any]:
    """findings.json's ``environments``: distinct distribution sets stored once, cells pointing at them."""
    sets: dict[str, str] = {}  # canonical text -> id
    bodies: dict[str, dict[str, str]] = {}
    cells: list[list[Any]] = []
    for r in sorted(results, key=lambda r: r.key):
        if r.forced or not specs.adapter_covers(r.trainer) or r.status in (Status.ERROR, Status.FLAKY):
            continue
        env = {k: v for k, v in sorted(r.environment.items()) if k not in ROOTS}
        ref = None
        if env:
            text = repr(sorted(env.items()))
            ref = sets.setdefault(text, f"e{len(sets)}")
            bodies[ref] = env
        cells.append([str(r.trl), str(r.transformers), r.resolution, str(r.status), ref, r.released])
    return {"sets": bodies, "cells": cells}


def measured(findings: Mapping[str, Any]) -> list[Measured]:
    """The cells of a findings file's ``environments`` table (empty for findings made before it existed)."""
    data = findings.get("environments") or {}
    sets = data.get("sets", {})
    out = []
    for trl, tf, resolution, status, ref, released in data.get("cells", ()):
        env = {**sets.get(ref, {}), **({"trl": trl, "transformers": tf} if ref else {})}
        out.append(Measured(trl, tf, resolution, status, tuple(sorted(env.items())), released))
    return out


# --------------------------------------------------------------------------- reproducing a cell


def from_result(r: CellResult) -> Measured:
    return Measured(str(r.trl), str(r.transformers), r.resolution, str(r.status),
                    tuple(sorted({k: str(v) for k, v in r.environment.items()}.items())), r.released)


def line_for(r: CellResult) -> str:
    """The line every report shows for a cell: its recorded environment pinned, or the bare pair where
    nothing was installed (the resolver refused it)."""
    from compat.harness.reports.vocab import pip_line

    return install_line(from_result(r)) if r.environment else pip_line(r.trl, r.transformers)


def line_template(env: Mapping[str, str | None]) -> str:
    """install_line with ``{trl}``/``{transformers}`` left to fill in: the page stores one per distinct
    environment and fills in each cell's own versions (None in ``env``: the cell's own)."""
    own = {k: (f"{{{k}}}" if v is None else v) for k, v in env.items()}
    own.update(trl="{trl}", transformers="{transformers}")
    return install_line(Measured("{trl}", "{transformers}", "", "", tuple(sorted(own.items()))))


def torch_build(version: str) -> tuple[str, str | None]:
    """(public version, local build label): ``2.13.0+cpu`` is the CPU build, ``2.5.1+cu121`` a CUDA one,
    a version without a label PyPI's default build."""
    m = _LOCAL.match(version)
    return (m["public"], m["local"]) if m else (version, None)


def build_words(version: str) -> str:
    _, local = torch_build(version)
    if local is None:
        return "PyPI's default build"
    if local == "cpu":
        return "the CPU build"
    return f"the {local.upper()} build" if local.startswith("cu") else f"the {local} build"


def install_line(cell: Measured) -> str:
    """The pip line that pins every distribution the cell recorded, torch's build included.

    The rest of the cell's environment (what the recorded distributions pull in) resolves as of
    today; the page and ``check`` say so beside it."""
    env = cell.env
    pins = [f"'{name}=={env[name]}'" for name in (*ROOTS, "torch") if name in env]
    pins += [f"'{name}=={ver}'" for name, ver in sorted(env.items()) if name not in (*ROOTS, "torch", "python")]
    _, local = torch_build(env.get("torch", ""))
    index = f"--extra-index-url https://download.pytorch.org/whl/{local} " if local else ""
    return f"pip install {index}{' '.join(pins)}"


def python_words(cell: Measured) -> str:
    return f"Python {cell.env['python']}" if "python" in cell.env else "an unrecorded Python"


# --------------------------------------------------------------------------- comparing environments


@dataclass(frozen=True)
class Difference:
    name: str
    measured: str | None  # None: the cell did not have it
    installed: str | None  # None: not installed here
    runtime: bool  # the stack uses it at run time (reached from trl's or transformers' requirements)

    def words(self) -> str:
        if self.name == "device":
            return (f"device: every cell ran on {self.measured}; this machine has {self.installed}, "
                    "which no cell measured")
        if self.name == "torch" and self.measured and self.installed:
            mp, ip = torch_build(self.measured), torch_build(self.installed)
            if mp[0] == ip[0]:
                return (f"torch: measured with {self.measured} ({build_words(self.measured)}), "
                        f"you have {self.installed} ({build_words(self.installed)})")
        if self.installed is None:
            return f"{self.name}: measured with {self.measured}, not installed here"
        if self.measured is None:
            return f"{self.name}: the measured environment did not have it, you have {self.installed}"
        return f"{self.name}: measured with {self.measured}, you have {self.installed}"


def _same(name: str, measured: str, installed: str) -> bool:
    if name == "python":  # a patch release of the interpreter does not move a verdict; a minor may
        return measured.split(".")[:2] == installed.split(".")[:2]
    try:
        return Version(measured) == Version(installed)
    except InvalidVersion:
        return measured == installed


def _canon(mapping: Mapping[str, str]) -> dict[str, str]:
    return {canonicalize_name(k) if k != "python" else k: v for k, v in mapping.items()}


def differences(cell: Measured, installed: Mapping[str, str], runtime: set[str],
                recorded: Iterable[str] = ()) -> list[Difference]:
    """Each distribution the cell recorded that this environment has at another version or lacks, and
    each one the stack here uses at run time that the cell lacked although cells record it when present
    (``recorded``: the names any cell of the table recorded)."""
    env, have = _canon(cell.env), _canon(installed)
    out = []
    for name in sorted(env):
        if name in have and _same(name, env[name], have[name]):
            continue
        out.append(Difference(name, env[name], have.get(name), name in runtime or name in ("python", "torch")))
    for name in sorted({canonicalize_name(n) for n in recorded} - set(env)):
        if name in have and name in runtime:
            out.append(Difference(name, None, have[name], True))
    return out


def local_gpu() -> str | None:
    """"an NVIDIA GPU" when this machine has the NVIDIA driver loaded (read from /proc; torch is not
    imported), else None."""
    return "an NVIDIA GPU" if Path("/proc/driver/nvidia/version").exists() else None


def device_difference(measured_devices: str, gpu: str | None) -> Difference | None:
    """The platform itself: cells that ran on CPU say nothing about training on this machine's GPU."""
    if gpu is None or "cuda" in measured_devices.lower():
        return None
    return Difference("device", measured_devices or "an unrecorded device", gpu, True)


def reach(requires: Mapping[str, Sequence[str]], roots: Iterable[str] = ROOTS,
          marker_env: Mapping[str, str] | None = None) -> set[str]:
    """Every distribution the roots' requirements reach (markers evaluated, extras ignored), by
    canonical name: what the stack can import at run time."""
    menv = dict(marker_env or default_environment())
    seen: set[str] = set()
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in requires:
            seen.add(name)
            continue
        seen.add(name)
        for text in requires[name]:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({**menv, "extra": ""}):
                continue
            todo.append(canonicalize_name(req.name))
    return seen


@dataclass(frozen=True)
class Installed:
    """The distributions of one Python environment, read from metadata (nothing is imported)."""

    versions: dict[str, str] = field(default_factory=dict)  # canonical name -> version, python included
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def here(cls) -> Installed:
        import sys
        from importlib import metadata

        versions = {"python": sys.version.split()[0]}
        requires: dict[str, tuple[str, ...]] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if not name:
                continue
            key = canonicalize_name(name)
            versions.setdefault(key, dist.version)
            requires.setdefault(key, tuple(dist.requires or ()))
        return cls(versions, requires)

    def runtime(self) -> set[str]:
        return reach(self.requires)


def closest(cells: Sequence[Measured], installed: Installed,
            recorded: Iterable[str] = ()) -> tuple[Measured, list[Difference]] | None:
    """The installed cell of this pair whose environment is nearest to ``installed``: fewest run-time
    differences, then fewest differences, then today's resolution."""
    # What cells record is the stack they import (conftest's list), so it is run time by definition.
    recorded = {canonicalize_name(n) for n in recorded}
    runtime = installed.runtime() | recorded
    ranked = []
    for c in cells:
        if not c.installed:
            continue
        diff = differences(c, installed.versions, runtime, recorded)
        ranked.append((sum(d.runtime for d in diff), len(diff), c.resolution != "latest", c, diff))
    if not ranked:
        return None
    best = min(ranked, key=lambda t: t[:3])
    return best[3], best[4]

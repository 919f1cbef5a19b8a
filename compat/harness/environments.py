"""A cell measured an environment, not a pair in the abstract.

This module keeps what each KTO cell ran with (the distributions its suite
recorded: the stack it imports), spells the install line that pins them, and
says how another environment, or a file's pins, differ from it. Host side: it
reads package metadata and findings, and never imports the ML stack.

findings.json carries the table built here (``environments``): each distinct
set of distributions once, and per cell its pair, resolution, status, set,
release time and failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from compat.contract import CellResult, Status
from compat.harness import axes, specs
from compat.harness.reports.vocab import pip_line

ROOTS = ("trl", "transformers")  # a cell's own pair; every other recorded distribution is its environment
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
    failure: tuple[str, ...] | None = None  # (stage, first line of the error, raised by[, platform reason])

    axes: tuple[tuple[str, str], ...] = ()  # further axes the cell was measured at (datasets 3.6.0, ...)

    @property
    def platform(self) -> str | None:
        """Why the cell's failure belongs to the platform it ran on (measured), or None."""
        return self.failure[3] if self.failure and len(self.failure) > 3 else None

    @property
    def env(self) -> dict[str, str]:
        return dict(self.environment)

    @property
    def installed(self) -> bool:
        return bool(self.environment)

    @property
    def compatible(self) -> bool:
        return self.status == "compatible"


def _failure(r: CellResult) -> list[Any] | None:
    """[stage, first line of the error, raised by], and the measured platform reason where the failure is
    platform-bound (a fourth item only then, so older readers of three keep working)."""
    f = r.failure
    if f is None:
        return None
    return [str(f.stage), (f.message or "").splitlines()[0][:300] if f.message else "", f.raised_by,
            *([f.platform] if f.platform else [])]


def table(results: Sequence[CellResult]) -> dict[str, Any]:
    """findings.json's ``environments``: distinct distribution sets stored once, cells pointing at them."""
    sets: dict[str, str] = {}  # canonical text -> id
    bodies: dict[str, dict[str, str]] = {}
    cells: list[list[Any]] = []
    for r in sorted(results, key=lambda r: r.key):
        if r.forced or not specs.adapter_covers(r.trainer) or r.status in (Status.ERROR, Status.FLAKY):
            continue
        further = axes.strings(axes.further(r))
        env = {k: v for k, v in sorted(r.environment.items()) if k not in ROOTS}
        ref = None
        if env:
            ref = sets.setdefault(repr(sorted(env.items())), f"e{len(sets)}")
            bodies[ref] = env
        # A failure is kept where an environment can match it (installed cells); the rest carry only their status.
        cells.append([str(r.trl), str(r.transformers), r.resolution, str(r.status), ref, r.released,
                      _failure(r) if ref else None, *([further] if further else [])])
    return {"sets": bodies, "cells": cells}


def measured(findings: Mapping[str, Any]) -> list[Measured]:
    """The cells of a findings file's ``environments`` table (empty for findings made before it existed)."""
    data = findings.get("environments") or {}
    sets = data.get("sets", {})
    out = []
    for trl, tf, resolution, status, ref, released, *rest in data.get("cells", ()):
        env = {**sets.get(ref, {}), **({"trl": trl, "transformers": tf} if ref else {})}
        failure = tuple(rest[0]) if rest and rest[0] else None
        further = tuple(rest[1].items()) if len(rest) > 1 else ()
        out.append(Measured(trl, tf, resolution, status, tuple(sorted(env.items())), released, failure, further))
    return out


# --------------------------------------------------------------------------- reproducing a cell


def from_result(r: CellResult) -> Measured:
    f = _failure(r)
    return Measured(str(r.trl), str(r.transformers), r.resolution, str(r.status),
                    tuple(sorted({k: str(v) for k, v in r.environment.items()}.items())), r.released,
                    tuple(f) if f else None, tuple(axes.strings(axes.further(r)).items()))


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
    """The pip line that pins every distribution the cell recorded, torch's build included (its index named).
    What those pull in resolves when it is installed: see ``line_words``."""
    env = cell.env
    pins = [f"'{name}=={env[name]}'" for name in (*ROOTS, "torch") if name in env]
    pins += [f"'{name}=={ver}'" for name, ver in sorted(env.items()) if name not in (*ROOTS, "torch", "python")]
    _, local = torch_build(env.get("torch", ""))
    index = f"--extra-index-url https://download.pytorch.org/whl/{local} " if local else ""
    return f"pip install {index}{' '.join(pins)}"


def line_words(cell: Measured) -> str:
    """What the install line does and does not fix, said beside it."""
    python = cell.env.get("python")
    pinned = len([k for k in cell.env if k != "python"])
    return (f"pins the {pinned} distributions the cell recorded; what they pull in resolves when you install"
            + (f"; the cell ran Python {'.'.join(python.split('.')[:2])}" if python else ""))


def line_for(r: CellResult) -> str:
    """The line every report shows for a cell: its recorded environment pinned, or the bare pair where
    nothing was installed (the resolver refused it)."""
    return install_line(from_result(r)) if r.environment else pip_line(r.trl, r.transformers, axes.further(r))


def line_template(env: Mapping[str, str | None]) -> str:
    """install_line with ``{trl}``/``{transformers}`` left to fill in: the page stores one per distinct
    environment and fills in each cell's own versions (None in ``env``: the cell's own)."""
    own = {k: (f"{{{k}}}" if v is None else v) for k, v in env.items()}
    own.update(trl="{trl}", transformers="{transformers}")
    return install_line(Measured("{trl}", "{transformers}", "", "", tuple(sorted(own.items()))))


# --------------------------------------------------------------------------- comparing environments


@dataclass(frozen=True)
class Difference:
    name: str
    measured: str | None  # None: the cell did not have it
    yours: str | None  # None: not installed here (or, for pins, not pinned)
    source: str = "installed"  # "installed": this environment; "pins": a file's pins

    def words(self) -> str:
        have = "you have" if self.source == "installed" else "your pins say"
        if self.name == "device":
            return f"device: every cell ran on {self.measured}; this machine has {self.yours}, which no cell measured"
        if self.name == "torch" and self.measured and self.yours:
            mp, yp = torch_build(self.measured), torch_build(self.yours)
            if mp[0] == yp[0]:
                return (f"torch: measured with {self.measured} ({build_words(self.measured)}), "
                        f"{have} {self.yours} ({build_words(self.yours)})")
        if self.yours is None:
            return f"{self.name}: measured with {self.measured}, not installed here"
        if self.measured is None:
            return f"{self.name}: the measured environment did not have it, {have} {self.yours}"
        return f"{self.name}: measured with {self.measured}, {have} {self.yours}"


def same(name: str, measured: str, yours: str) -> bool:
    """Equal versions of ``name`` (PEP 440; for python, the same minor)."""
    if name == "python":  # a patch release of the interpreter does not move a verdict; a minor may
        return measured.split(".")[:2] == yours.split(".")[:2]
    try:
        return Version(measured) == Version(yours)
    except InvalidVersion:
        return measured == yours


def canonical(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {canonicalize_name(k) if k != "python" else k: v for k, v in mapping.items()}


@dataclass(frozen=True)
class Comparison:
    cell: Measured
    differences: tuple[Difference, ...]
    unknown: tuple[str, ...] = ()  # recorded distributions the pins leave open: they resolve at install time


def compare(cell: Measured, yours: Mapping[str, Sequence[str]], *, complete: bool, recorded: Iterable[str] = ()) -> Comparison:
    """``yours``: each distribution's allowed versions (an environment: its one installed version; a lock that
    forks: several). ``complete``: an environment, where a distribution absent is not installed; pins, where
    it is merely open. ``recorded``: the names any cell recorded when present, so one the cell lacks but
    ``yours`` has is a difference too."""
    env, have = canonical(cell.env), canonical(yours)
    source = "installed" if complete else "pins"
    diffs, unknown = [], []
    for name in sorted(env):
        if name in ROOTS:
            continue
        if name not in have:
            if complete:
                diffs.append(Difference(name, env[name], None, source))
            elif name != "python":  # a requirements file does not choose the interpreter
                unknown.append(name)
        elif not any(same(name, env[name], v) for v in have[name]):
            diffs.append(Difference(name, env[name], have[name][0], source))
    for name in sorted({canonicalize_name(n) for n in recorded} - set(env) - set(ROOTS)):
        if name in have:
            diffs.append(Difference(name, None, have[name][0], source))
    return Comparison(cell, tuple(diffs), tuple(unknown))


def local_gpu() -> str | None:
    """"an NVIDIA GPU" when this machine has the NVIDIA driver loaded (read from /proc; torch is not
    imported), else None."""
    return "an NVIDIA GPU" if Path("/proc/driver/nvidia/version").exists() else None


def device_difference(measured_devices: str, gpu: str | None) -> Difference | None:
    """The platform itself: cells that ran on CPU say nothing about training on this machine's GPU."""
    if gpu is None or "cuda" in measured_devices.lower():
        return None
    return Difference("device", measured_devices or "an unrecorded device", gpu)


def here() -> dict[str, list[str]]:
    """The distributions installed in this Python, read from metadata (nothing is imported)."""
    import sys
    from importlib import metadata

    versions: dict[str, list[str]] = {"python": [sys.version.split()[0]]}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonicalize_name(name), [dist.version])
    return versions

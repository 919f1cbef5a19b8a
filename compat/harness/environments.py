"""A cell measured an environment, not a pair in the abstract.

This module keeps what each cell ran with: the distributions its suite recorded
(the stack it imports) and its lock (every distribution, exact: compat.harness.locks),
spells the line that reproduces the cell from its lock, and says how another
environment, or a file's pins, differ from it. Host side: it reads package
metadata and findings, and never imports the ML stack.

findings.json carries the table built here (``environments``): each distinct
set of recorded distributions once, and per cell its pair, resolution, status,
set, release time, failure, lock id and trainer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from compat.contract import AXES, DEFAULT_TRAINER, CellResult, Resolution, Status
from compat.harness import axes
from compat.harness.envs import as_of
from compat.harness.reports.vocab import pip_line

ROOTS = AXES  # a cell's own pair; every other recorded distribution is its environment
_LOCAL = re.compile(r"^(?P<public>[^+]+)\+(?P<local>.+)$")


@dataclass(frozen=True)
class Measured:
    """One cell as the findings keep it: the pair, how it was resolved, its status, what it ran with."""

    trl: str
    transformers: str
    resolution: str
    status: str
    environment: tuple[tuple[str, str], ...] = ()  # (distribution, version), python included, sorted
    released: str = ""
    failure: tuple[str, ...] | None = None  # (stage, first line of the error, raised by[, platform reason])
    lock: str | None = None  # id of the cell's lock (compat.harness.locks); None: none was published
    trainer: str = DEFAULT_TRAINER

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
        return bool(self.environment) or self.lock is not None

    @property
    def compatible(self) -> bool:
        return self.status == Status.COMPATIBLE


def _failure(r: CellResult) -> list[Any] | None:
    """[stage, first line of the error, raised by], and the measured platform reason where the failure is
    platform-bound (a fourth item only then, so older readers of three keep working)."""
    f = r.failure
    if f is None:
        return None
    return [str(f.stage), (f.message or "").splitlines()[0][:300] if f.message else "", f.raised_by,
            *([f.platform] if f.platform else [])]


def tabled(results: Sequence[CellResult]) -> list[CellResult]:
    """The cells findings keep an environment row for: every trainer's measured cells (forced runs test
    metadata, not installs; errors and flaky cells say nothing certain)."""
    return [r for r in sorted(results, key=lambda r: r.key)
            if not r.forced and r.status not in (Status.ERROR, Status.FLAKY)]


def table(results: Sequence[CellResult]) -> dict[str, Any]:
    """findings.json's ``environments``: distinct distribution sets stored once, cells pointing at them."""
    sets: dict[str, str] = {}  # canonical text -> id
    bodies: dict[str, dict[str, str]] = {}
    cells: list[list[Any]] = []
    for r in tabled(results):
        further = axes.strings(axes.further(r))
        env = {k: v for k, v in sorted(r.environment.items()) if k not in ROOTS}
        ref = None
        if env:
            ref = sets.setdefault(repr(sorted(env.items())), f"e{len(sets)}")
            bodies[ref] = env
        # A failure is kept where an environment can match it (installed cells); the rest carry only their status.
        row = [str(r.trl), str(r.transformers), r.resolution, str(r.status), ref, r.released,
               _failure(r) if ref or r.lock else None, r.lock, r.trainer, *([further] if further else [])]
        cells.append(row[:7] if row[7:] == [None, DEFAULT_TRAINER] else row)  # a KTO cell without a lock or axes: the old row
    return {"sets": bodies, "cells": cells}


def measured(findings: Mapping[str, Any], trainer: str | None = DEFAULT_TRAINER) -> list[Measured]:
    """The cells of a findings file's ``environments`` table (empty for findings made before it existed):
    ``trainer``'s, or every trainer's with None."""
    data = findings.get("environments") or {}
    sets = data.get("sets", {})
    out = []
    for trl, tf, resolution, status, ref, released, *rest in data.get("cells", ()):
        failure, lock, who = (rest + [None, None, DEFAULT_TRAINER][len(rest):])[:3]
        if trainer is not None and who != trainer:
            continue
        env = {**sets.get(ref, {}), **({"trl": trl, "transformers": tf} if ref else {})}
        out.append(Measured(trl, tf, resolution, status, tuple(sorted(env.items())), released,
                            tuple(failure) if failure else None, lock, who, tuple((rest[3] or {}).items())
                            if len(rest) > 3 else ()))
    return out


# --------------------------------------------------------------------------- reproducing a cell


def from_result(r: CellResult) -> Measured:
    f = _failure(r)
    return Measured(str(r.trl), str(r.transformers), r.resolution, str(r.status),
                    tuple(sorted({k: str(v) for k, v in r.environment.items()}.items())), r.released,
                    tuple(f) if f else None, r.lock, r.trainer, tuple(axes.strings(axes.further(r)).items()))


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


def torch_links(version: str) -> str | None:
    """Where a torch build with a local label comes from: PyTorch's page of that build's torch wheels. Passed
    as find-links, as the harness itself does (envs.index_args): nothing but torch can come from there, where
    an extra index would let uv take any package that index also carries from it alone."""
    _, local = torch_build(version)
    return f"https://download.pytorch.org/whl/{local}/torch/" if local else None


def only(trl: object, transformers: object, resolution: str = Resolution.LATEST, trainer: str = DEFAULT_TRAINER,
         further: Iterable[tuple[str, object]] = ()) -> str:
    """The PAIR that names one cell (``--only``'s syntax): its further axes, and its suffixes only where they
    are not the default."""
    return (f"trl=={trl},transformers=={transformers}" + "".join(f",{k}=={v}" for k, v in further)
            + (f",resolution={resolution}" if resolution != Resolution.LATEST else "")
            + (f",trainer={trainer}" if trainer != DEFAULT_TRAINER else ""))


def install_line(cell: Measured) -> str:
    """The line to copy: the cell's own lock, synced (``kto-compat lock``); for a cell that installed
    nothing (or whose lock was never published), the bare pair."""
    if cell.lock is None:
        return pip_line(cell.trl, cell.transformers, cell.axes)
    name = only(cell.trl, cell.transformers, cell.resolution, cell.trainer, cell.axes)
    return f"kto-compat lock {name} > lock.txt && uv pip sync lock.txt"


def human_line(cell: Measured) -> str | None:
    """A short line beside it that says how an as-of-release cell resolved (uv's cutoff at the pair's release)."""
    if cell.resolution != Resolution.AS_OF_RELEASE or not cell.released:
        return None
    return f"uv pip install --exclude-newer {as_of(cell.released)} 'trl=={cell.trl}' 'transformers=={cell.transformers}'"


LOCK_WORDS = ("writes this cell's lock, every distribution it ran with at its exact version, torch's build included, "
              "and installs exactly that into the active environment")
BARE_WORDS = "the pair alone: nothing was installed for this cell"
UNPUBLISHED_WORDS = "the pair alone: this cell's lock was not published, so everything else resolves when you install"


def line_words(cell: Measured) -> str:
    """What the install line does, said beside it."""
    if cell.lock is None:
        return UNPUBLISHED_WORDS if cell.installed else BARE_WORDS
    python = cell.env.get("python")
    return LOCK_WORDS + (f"; the cell ran Python {'.'.join(python.split('.')[:2])}" if python else "")


def line_for(r: CellResult) -> str:
    """The line every report shows for a cell (see install_line)."""
    return install_line(from_result(r))


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
    differences: tuple[Difference, ...]  # in distributions the stack uses at run time: they can move the verdict
    unknown: tuple[str, ...] = ()  # run-time distributions the pins leave open: they resolve at install time
    elsewhere: tuple[Difference, ...] = ()  # in the rest of the lock (tzdata, urllib3, pytest...): --verbose


def compare(cell: Measured, yours: Mapping[str, Sequence[str]], *, complete: bool, recorded: Iterable[str] = (),
            pins: Mapping[str, str] | None = None, runtime: Iterable[str] = ()) -> Comparison:
    """``yours``: each distribution's allowed versions (an environment: its one installed version; a lock that
    forks: several). ``complete``: an environment, where a distribution absent is not installed; pins, where
    it is merely open.

    ``pins``: the cell's lock, compared in full where it is known; a difference counts only in a distribution
    the stack uses at run time: one the cell's suite recorded importing, or one in ``runtime`` (the requirement
    closure of trl and transformers, see ``reach``); the others go to ``elsewhere``. Without a lock, what the
    suite recorded is compared, and ``recorded`` (the names any cell recorded) makes one the cell lacks but
    ``yours`` has a difference too."""
    env, have = canonical(cell.env), canonical(yours)
    reference = {**canonical(pins), **({"python": env["python"]} if "python" in env else {})} if pins else env
    used = set(env) | {canonicalize_name(n) for n in runtime}
    source = "installed" if complete else "pins"
    diffs: list[Difference] = []
    elsewhere: list[Difference] = []
    unknown: list[str] = []
    for name in sorted(reference):
        if name in ROOTS:
            continue
        found = None
        if name not in have:
            if complete:
                found = Difference(name, reference[name], None, source)
            elif name != "python" and name in used:  # a requirements file does not choose the interpreter
                unknown.append(name)
        elif not any(same(name, reference[name], v) for v in have[name]):
            found = Difference(name, reference[name], have[name][0], source)
        if found is not None:
            (diffs if name in used else elsewhere).append(found)
    extra = used if pins else {canonicalize_name(n) for n in recorded}
    for name in sorted(extra - set(reference) - set(ROOTS)):
        if name in have:
            diffs.append(Difference(name, None, have[name][0], source))
    return Comparison(cell, tuple(diffs), tuple(unknown), tuple(elsewhere))


def reach(roots: Iterable[str] = ROOTS, requires: Callable[[str], Sequence[str] | None] | None = None) -> set[str]:
    """The distributions the requirements of ``roots`` reach, transitively, markers evaluated for this Python
    and extras followed: what the stack uses at run time. ``requires``: a distribution's Requires-Dist (None
    where it is not installed); by default read from this Python's metadata, nothing imported."""
    from packaging.markers import UndefinedEnvironmentName
    from packaging.requirements import InvalidRequirement, Requirement

    requires = requires or _installed_requires
    seen: set[str] = set()
    queue = [(canonicalize_name(r), frozenset({""})) for r in roots]
    done: set[tuple[str, frozenset[str]]] = set()
    while queue:
        name, extras = queue.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        seen.add(name)
        for text in requires(name) or ():
            try:
                req = Requirement(text)
                if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
                    continue
            except (InvalidRequirement, UndefinedEnvironmentName):
                continue
            queue.append((canonicalize_name(req.name), frozenset({"", *req.extras})))
    return seen


def _installed_requires(name: str) -> Sequence[str] | None:
    from importlib import metadata

    try:
        return metadata.distribution(name).requires or []
    except metadata.PackageNotFoundError:
        return None


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

"""Profiles -> concrete cells, expanded against the releases the index has."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from packaging.version import InvalidVersion, Version

from compat.contract import DEFAULT_TRAINER, Resolution, cell_id

from . import axes, specs
from .config import RESOLUTIONS, ConfigError, MatrixConfig, Profile, Selector
from .index import IndexUnavailable, Release

Lister = Callable[[str], Sequence[Release]]


@dataclass(frozen=True, order=True)
class Cell:
    """One TRL x transformers pair (plus any further axes) under one resolution mode, measuring one trainer."""

    trl: Version
    transformers: Version
    resolution: str = Resolution.LATEST
    forced: bool = False  # run even where TRL's metadata forbids the pair (uv overrides)
    trainer: str = DEFAULT_TRAINER
    axes: tuple[tuple[str, Version], ...] = ()  # further axes (datasets, torch, ...), in grid order
    # Facts from the index, not identity: the cell's release time (the latest upload among its
    # axes; as-of-release resolves against it) and which are yanked.
    released: str = field(default="", compare=False)
    yanked: tuple[str, ...] = field(default=(), compare=False)
    declared: str | None = field(default=None, compare=False)  # TRL's Requires-Dist on transformers

    @property
    def all_axes(self) -> dict[str, Version]:
        return {"trl": self.trl, "transformers": self.transformers, **dict(self.axes)}

    @property
    def id(self) -> str:
        return cell_id(self.trl, self.transformers, self.resolution, self.forced, self.trainer, axes=dict(self.axes))

    @property
    def env_id(self) -> str:
        """The environment's name: every trainer measured on one cell's axes shares it."""
        return cell_id(self.trl, self.transformers, self.resolution, self.forced, axes=dict(self.axes))

    @property
    def only(self) -> str:
        res = "" if self.resolution == Resolution.LATEST else f",resolution={self.resolution}"
        trainer = "" if self.trainer == DEFAULT_TRAINER else f",trainer={self.trainer}"
        return f"{axes.spec(self)}{res}{trainer}"


def select(selector: Selector, releases: Sequence[Release], where: str) -> list[Version]:
    """Apply one selector to the index's releases (yanked ones only when named exactly)."""
    if selector.exact is not None:
        if not any(r.version == selector.exact for r in releases):
            raise ConfigError(f"{where}: version {selector.exact} does not exist on the package index")
        return [selector.exact]
    versions = sorted(selector.spec.filter(r.version for r in releases if not r.yanked))
    if not versions:
        raise ConfigError(f"{where}: no release on the package index matches {selector.text!r}")
    if selector.pick == "latest":
        return [versions[-1]]
    if selector.pick == "earliest":
        return [versions[0]]
    if selector.pick == "latest-per-minor":
        newest: dict[tuple[int, int], Version] = {}
        for v in versions:
            newest[(v.major, v.minor)] = v
        return sorted(newest.values())
    return versions


MAX_CELLS = 20_000  # the full profile is about 2,000 cells; a grid past this is a typo, not a plan


def expand(profile: Profile, lister: Lister, resolutions: Iterable[str], trainers: Iterable[str] = (DEFAULT_TRAINER,)) -> list[Cell]:
    cells: set[Cell] = set()
    size = 0
    for gi, grid in enumerate(profile.grids):
        chosen: list[tuple[str, list[Version]]] = []
        for name, sels in grid.all_axes:
            try:
                releases = lister(name)
            except IndexUnavailable as exc:  # a misspelt axis is a 404: say which grid key named it
                raise IndexUnavailable(f"profiles.{profile.name}.grid[{gi}].{name}: {exc}") from None
            versions: set[Version] = set()
            for si, sel in enumerate(sels):
                versions.update(select(sel, releases, f"profiles.{profile.name}.grid[{gi}].{name}[{si}]"))
            chosen.append((name, sorted(versions)))
        modes = grid.resolutions or tuple(resolutions)
        names = grid.trainers or tuple(trainers)
        size += math.prod(len(vs) for _, vs in chosen) * len(modes) * len(names)
        if size > MAX_CELLS:  # said before a single cell is built: a 1,500 x 1,500 grid would take minutes
            raise ConfigError(f"profiles.{profile.name}.grid[{gi}]: the profile expands to {size} cells or more, "
                              f"over the limit of {MAX_CELLS}; narrow its specifiers or pick (e.g. latest-per-minor)")
        further = [name for name, _ in chosen[2:]]
        for point in itertools.product(*(vs for _, vs in chosen)):
            cells.update(Cell(point[0], point[1], r, trainer=t, axes=tuple(zip(further, point[2:], strict=True)))
                         for r in modes for t in names)
    return sorted(cells)


@dataclass(frozen=True)
class Only:
    """One ``--only`` value: a cell, or some of its axes (a whole row or column of the profile)."""

    text: str
    trl: Version | None = None
    transformers: Version | None = None
    resolution: str | None = None
    trainer: str | None = None
    axes: tuple[tuple[str, Version], ...] = ()  # further axes named (datasets==3.6.0, ...)

    @property
    def all_axes(self) -> dict[str, Version]:
        named = {"trl": self.trl, "transformers": self.transformers}
        return {**{k: v for k, v in named.items() if v is not None}, **dict(self.axes)}

    def matches(self, cell: Cell) -> bool:
        have = cell.all_axes
        return (all(have.get(k) == v for k, v in self.all_axes.items())
                and (self.resolution is None or cell.resolution == self.resolution)
                and (self.trainer is None or cell.trainer == self.trainer))


_FORM = ("expected 'trl==A,transformers==B' (either one alone selects a row or column; optionally "
         "',datasets==C' for a further axis, ',resolution=MODE', ',trainer=NAME')")


def parse_only(text: str, flag: str = "--only") -> Only:
    """``trl==A[,transformers==B][,DIST==C...][,resolution=MODE][,trainer=NAME]`` (any order); a clear
    error otherwise. Any distribution named with ``==`` is an axis."""
    from compat import trainers

    fields: dict[str, str] = {}
    versions: dict[str, Version] = {}
    for part in text.split(","):
        raw, sep, value = part.strip().partition("==" if "==" in part else "=")
        raw, value = raw.strip(), value.strip()
        name = axes.canonical(raw) if sep == "==" else raw
        if not sep or not value or not name or name in fields or name in versions \
                or (sep == "=" and name not in ("resolution", "trainer")):
            raise ConfigError(f"{flag} {text!r}: {_FORM}")
        if sep == "=":
            fields[name] = value
            continue
        try:
            versions[name] = Version(value)
        except InvalidVersion:
            raise ConfigError(f"{flag} {text!r}: {name} {value!r} is not a version") from None
    if "trl" not in versions and "transformers" not in versions:
        raise ConfigError(f"{flag} {text!r}: {_FORM}")
    if fields.get("resolution", Resolution.LATEST) not in RESOLUTIONS:
        raise ConfigError(f"{flag} {text!r}: unknown resolution {fields['resolution']!r}; one of {', '.join(RESOLUTIONS)}")
    if fields.get("trainer", DEFAULT_TRAINER) not in trainers.names():
        raise ConfigError(f"{flag} {text!r}: unknown trainer {fields['trainer']!r}; one of {', '.join(trainers.names())}")
    further = tuple((k, v) for k, v in versions.items() if k not in axes.DEFAULT)
    return Only(text, versions.get("trl"), versions.get("transformers"), fields.get("resolution"),
                fields.get("trainer"), further)


PAIR_FORM = "expected 'trl==A,transformers==B'"


def parse_pins(text: str, flag: str = "--pair") -> dict[str, Version]:
    """One KTO cell with today's dependencies (``check``): trl and transformers, and any further axes
    (``datasets==C``); the error names only the form these commands take (``--only``'s rows, columns
    and modes do not apply)."""
    try:
        sel = parse_only(text, flag)
    except ConfigError as exc:
        if "is not a version" in str(exc):
            raise
        raise ConfigError(f"{flag} {text!r}: {PAIR_FORM}") from None
    if sel.trl is None or sel.transformers is None or sel.trainer not in (None, DEFAULT_TRAINER) or sel.resolution is not None:
        raise ConfigError(f"{flag} {text!r}: {PAIR_FORM} (a {specs.title(DEFAULT_TRAINER)} pair with today's dependencies; "
                          "name trl, transformers and any further axis)")
    return sel.all_axes


def parse_pair(text: str, flag: str = "--pair") -> tuple[Version, Version]:
    """One KTO pair, both axes and nothing else (``memory``)."""
    pins = parse_pins(text, flag)
    if set(pins) != set(axes.DEFAULT):
        raise ConfigError(f"{flag} {text!r}: {PAIR_FORM} (name only trl and transformers)")
    return pins["trl"], pins["transformers"]


def with_index_facts(cell: Cell, listed: dict[str, dict[Version, Release]]) -> Cell:
    """Attach release time and yanked flags from the index listing (``listed``: name -> version -> release)."""
    times, yanked = [], []
    for name, version in cell.all_axes.items():
        r = listed[name].get(version)
        if r is not None:
            times.append(r.uploaded)
            if r.yanked:
                yanked.append(name)
    return replace(cell, released=max(times, default=""), yanked=tuple(yanked))


def plan(
    config: MatrixConfig,
    profile: str,
    lister: Lister,
    only: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
    force: bool = False,
) -> list[Cell]:
    """The cells to run: a profile's, or the ``--only`` selections (a pair is checked against the
    index; a single axis selects that row or column of the profile)."""
    settings = config.settings
    if only:
        cells: set[Cell] = set()
        expanded: list[Cell] | None = None
        for text in only:
            sel = parse_only(text)
            found: dict[str, Version] = {}
            for name, v in sel.all_axes.items():
                spelled = next((r.version for r in lister(name) if r.version == v), None)
                if spelled is None:
                    raise ConfigError(f"--only {text!r}: {name} {v} does not exist on the package index")
                found[name] = spelled  # the index's spelling: 1.0 and 1.0.0 are one release, one cell
            chosen = config.profile(profile)
            if sel.trl is not None and sel.transformers is not None:
                modes = (sel.resolution,) if sel.resolution else settings.resolutions
                names = (sel.trainer,) if sel.trainer else _profile_trainers(chosen, settings.trainers)
                further = tuple((k, found[k]) for k, _ in sel.axes)
                cells.update(Cell(found["trl"], found["transformers"], r, trainer=t, axes=further)
                             for r in modes for t in names)
                continue
            if expanded is None:
                expanded = expand(chosen, lister, settings.resolutions, settings.trainers)
            # Some axes: that row or column of the profile, under the resolution or trainer asked for.
            axis = replace(sel, resolution=None, trainer=None)
            picked = {replace(c, resolution=sel.resolution or c.resolution, trainer=sel.trainer or c.trainer)
                      for c in expanded if axis.matches(c)}
            if not picked:
                raise ConfigError(f"--only {text!r}: no cell of profile {profile!r} matches")
            cells.update(picked)
        out = sorted(cells)
    else:
        out = expand(config.profile(profile), lister, settings.resolutions, settings.trainers)
    if shard is not None:
        i, n = shard
        out = [c for k, c in enumerate(out) if k % n == i - 1]
    dists = dict.fromkeys(name for c in out for name in c.all_axes)
    index_listing = {name: {r.version: r for r in lister(name)} for name in dists}  # once, not per cell
    return [with_index_facts(replace(c, forced=force), index_listing) for c in out]


def _profile_trainers(profile: Profile, default: tuple[str, ...]) -> tuple[str, ...]:
    """The trainers a profile measures (its grids' own, else the settings')."""
    names = {t for g in profile.grids for t in (g.trainers or default)}
    return tuple(sorted(names)) or default


def drift_followups(results: Sequence[Any], planned: Sequence[Cell], elsewhere: Sequence[Cell] = ()) -> list[Cell]:
    """As-of-release twins of the `latest` cells that failed by dependency drift and are not planned:
    the twin says whether the pair itself works when its dependencies are those of its day.
    ``elsewhere``: the other shards' cells; a twin planned there runs there, so no cell runs twice."""
    have = set((*planned, *elsewhere))  # a Cell's identity: axes, resolution, forced, trainer
    by_id = {c.id: c for c in planned}
    out = []
    for r in results:
        cell = by_id.get(r.id)
        if cell is None or cell.resolution != Resolution.LATEST or not (r.failure and r.failure.drift):
            continue
        twin = replace(cell, resolution=Resolution.AS_OF_RELEASE)
        if twin not in have:
            out.append(twin)
    return out


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not (1 <= int(m[1]) <= int(m[2])):
        raise ConfigError(f"--shard {text!r}: expected i/n with 1 <= i <= n")
    return int(m[1]), int(m[2])

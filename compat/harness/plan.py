"""Profiles -> concrete cells, expanded against the releases the index has."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from packaging.version import InvalidVersion, Version

from .config import RESOLUTIONS, ConfigError, MatrixConfig, Profile, Selector
from .index import Release
from .results import cell_id

Lister = Callable[[str], Sequence[Release]]


@dataclass(frozen=True, order=True)
class Cell:
    """One TRL x transformers pair under one resolution mode."""

    trl: Version
    transformers: Version
    resolution: str = "latest"
    forced: bool = False  # run even where TRL's metadata forbids the pair (uv overrides)
    # Facts from the index, not identity: the pair's release time (the later of
    # the two uploads; as-of-release resolves against it) and which are yanked.
    released: str = field(default="", compare=False)
    yanked: tuple[str, ...] = field(default=(), compare=False)
    declared: str | None = field(default=None, compare=False)  # TRL's Requires-Dist on transformers

    @property
    def id(self) -> str:
        return cell_id(self.trl, self.transformers, self.resolution, self.forced)

    @property
    def only(self) -> str:
        res = "" if self.resolution == "latest" else f",resolution={self.resolution}"
        return f"trl=={self.trl},transformers=={self.transformers}{res}"


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


def expand(profile: Profile, lister: Lister, resolutions: Iterable[str]) -> list[Cell]:
    cells: set[Cell] = set()
    for gi, grid in enumerate(profile.grids):
        axes = []
        for name, sels in (("trl", grid.trl), ("transformers", grid.transformers)):
            releases = lister(name)
            chosen: set[Version] = set()
            for si, sel in enumerate(sels):
                chosen.update(select(sel, releases, f"profiles.{profile.name}.grid[{gi}].{name}[{si}]"))
            axes.append(sorted(chosen))
        modes = grid.resolutions or tuple(resolutions)
        cells.update(Cell(a, b, r) for a in axes[0] for b in axes[1] for r in modes)
    return sorted(cells)


_ONLY = re.compile(r"^\s*trl\s*==\s*(?P<trl>[^,\s]+)\s*,\s*transformers\s*==\s*(?P<tf>[^,\s]+)\s*"
                   r"(,\s*resolution\s*=\s*(?P<res>[\w-]+)\s*)?$")


def parse_only(text: str) -> tuple[Version, Version]:
    """`trl==A,transformers==B[,resolution=MODE]` -> versions; a clear error otherwise."""
    return parse_only_cell(text)[:2]  # type: ignore[return-value]


def parse_only_cell(text: str) -> tuple[Version, Version, str | None]:
    m = _ONLY.match(text)
    if not m:
        raise ConfigError(f"--only {text!r}: expected 'trl==A,transformers==B' (optionally ',resolution=as-of-release')")
    if m["res"] and m["res"] not in RESOLUTIONS:
        raise ConfigError(f"--only {text!r}: unknown resolution {m['res']!r}; one of {', '.join(RESOLUTIONS)}")
    try:
        return Version(m["trl"]), Version(m["tf"]), m["res"]
    except InvalidVersion as exc:
        raise ConfigError(f"--only {text!r}: {exc}") from None


def with_index_facts(cell: Cell, lister: Lister) -> Cell:
    """Attach release time and yanked flags from the index listing."""
    times, yanked = [], []
    for name, version in (("trl", cell.trl), ("transformers", cell.transformers)):
        for r in lister(name):
            if r.version == version:
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
    """The cells to run: a profile's, or exactly the `--only` pairs (checked against the index)."""
    resolutions = config.settings.resolutions
    if only:
        cells = set()
        for text in only:
            trl, tf, res = parse_only_cell(text)
            for name, v in (("trl", trl), ("transformers", tf)):
                if not any(r.version == v for r in lister(name)):
                    raise ConfigError(f"--only {text!r}: {name} {v} does not exist on the package index")
            cells.update(Cell(trl, tf, r) for r in ((res,) if res else resolutions))
        out = sorted(cells)
    else:
        out = expand(config.profile(profile), lister, resolutions)
    if shard is not None:
        i, n = shard
        out = [c for k, c in enumerate(out) if k % n == i - 1]
    return [with_index_facts(replace(c, forced=force), lister) for c in out]


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not (1 <= int(m[1]) <= int(m[2])):
        raise ConfigError(f"--shard {text!r}: expected i/n with 1 <= i <= n")
    return int(m[1]), int(m[2])

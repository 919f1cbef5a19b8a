"""The grid every report draws, built once: sections of TRL rows x transformers columns.

A section is one trainer under one resolution mode (forced runs apart) at one value of each further
axis (datasets 3.6.0, ...): the grid a person reads stays TRL x transformers. Rows
and columns are newest first, and ``latest`` resolution comes before
``as-of-release``, as the PyTorch and Lightning tables order theirs. The
Markdown, HTML, SVG and JUnit renderers all read these sections; none builds
its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.version import Version

from compat.contract import DEFAULT_TRAINER, CellResult, Resolution, Status
from compat.harness import axes, specs
from compat.harness.reports.vocab import shown

RESOLUTION_ORDER: tuple[Resolution, ...] = tuple(Resolution)


@dataclass(frozen=True)
class Span:
    """Consecutive columns of one row where the pair trains: ``lo``..``hi`` (ascending).

    ``gaps`` are columns inside the span that no cell of this row measured: the
    claim that they work too is an inference from the measured points around them.
    """

    lo: Version
    hi: Version
    measured: tuple[Version, ...]
    gaps: tuple[Version, ...] = ()


Key = tuple[str, str, bool, tuple[tuple[str, Version], ...]]  # trainer, resolution, forced, further axes


def key_of(r: CellResult) -> Key:
    """The section a cell is drawn in."""
    return r.trainer, r.resolution, r.forced, axes.further(r)


@dataclass(frozen=True)
class Section:
    trainer: str
    resolution: str
    forced: bool
    trls: tuple[Version, ...]  # newest first
    tfs: tuple[Version, ...]  # newest first
    cells: Mapping[tuple[Version, Version], CellResult] = field(hash=False)
    axes: tuple[tuple[str, Version], ...] = ()  # the further axes' values every cell here shares

    @property
    def title(self) -> str:
        forced = " (forced past TRL's declared requirements)" if self.forced else ""
        further = f", {axes.label(self.axes)}" if self.axes else ""
        return f"{specs.title(self.trainer)}, resolution: {self.resolution}{further}{forced}"

    @property
    def key(self) -> Key:
        return self.trainer, self.resolution, self.forced, self.axes

    def same_view(self, other: Section) -> bool:
        """Another section of the same trainer at the same further axes (e.g. the other resolution mode)."""
        return other is not self and other.trainer == self.trainer and other.axes == self.axes

    def at(self, trl: Version, tf: Version) -> CellResult | None:
        return self.cells.get((trl, tf))

    def spans(self, trl: Version) -> list[Span]:
        """Where row ``trl`` trains, as spans over the columns (oldest to newest)."""
        out: list[Span] = []
        current: list[Version] = []  # columns since the span's first compatible one
        for tf in sorted(self.tfs):
            cell = self.at(trl, tf)
            if cell is not None and cell.status == Status.COMPATIBLE:
                current.append(tf)
            elif cell is None and current:
                current.append(tf)  # unmeasured: may belong to the span if a compatible cell follows
            else:
                _close(out, current, self, trl)
                current = []
        _close(out, current, self, trl)
        return out

    def uses(self, trl: Version) -> list[tuple[str, Version, Version]]:
        """The keyword a script hands the tokenizer under along row ``trl``, as (keyword, lo, hi) runs over
        its compatible cells, oldest to newest: one run when the row takes one keyword everywhere it trains."""
        runs: list[tuple[str, Version, Version]] = []
        for tf in sorted(self.tfs):
            r = self.at(trl, tf)
            if r is None or r.status != Status.COMPATIBLE:
                continue
            use = r.use_keyword() or ""
            if runs and runs[-1][0] == use:
                runs[-1] = (use, runs[-1][1], tf)
            else:
                runs.append((use, tf, tf))
        return runs


def _close(out: list[Span], columns: list[Version], section: Section, trl: Version) -> None:
    measured = [tf for tf in columns if section.at(trl, tf) is not None]
    if not measured:
        return
    inside = [tf for tf in columns if measured[0] <= tf <= measured[-1]]
    out.append(Span(measured[0], measured[-1], tuple(measured), tuple(tf for tf in inside if section.at(trl, tf) is None)))


def sections(cells: Iterable[CellResult]) -> list[Section]:
    groups: dict[Key, list[CellResult]] = {}
    for r in cells:
        groups.setdefault(key_of(r), []).append(r)

    further = sorted({k[3] for k in groups}, reverse=True)  # newest value of the further axes first

    def order(key: Key) -> tuple[bool, str, bool, int, int, bool]:
        trainer, resolution, forced, values = key
        rank = RESOLUTION_ORDER.index(resolution) if resolution in RESOLUTION_ORDER else len(RESOLUTION_ORDER)
        # the pair's own grids first, then those of each further-axes value (its modes together)
        return trainer != DEFAULT_TRAINER, trainer, bool(values), further.index(values), rank, forced

    out = []
    for key in sorted(groups, key=order):
        group = groups[key]
        out.append(Section(*key[:3], trls=tuple(sorted({r.trl for r in group}, reverse=True)),
                           tfs=tuple(sorted({r.transformers for r in group}, reverse=True)),
                           cells={(r.trl, r.transformers): r for r in group}, axes=key[3]))
    return out


def words(r: CellResult) -> tuple[str, str, tuple[str, ...]]:
    """(status, detail, marks) of a cell: the keyword to use for a compatible pair, the failing
    stage (with ", drift") for an incompatible one; marks for yanked releases and forced runs. A platform-bound
    failure shows as ``platform`` (vocab.PLATFORM), not as a plain incompatible."""
    marks = (*(f"{y} yanked" for y in r.yanked), *(("forced",) if r.forced else ()))
    if r.status == Status.COMPATIBLE:
        return str(r.status), r.use_keyword() or "", marks
    if r.failure is not None and r.status in (Status.INCOMPATIBLE, Status.FLAKY):
        return shown(r), f"{r.failure.stage}{', drift' if r.failure.drift else ''}", marks
    return str(r.status), "", marks


def ordered(cells: Sequence[CellResult]) -> list[CellResult]:
    """Cells in report order: section by section, newest row first, newest column first."""
    return [s.cells[(t, f)] for s in sections(cells) for t in s.trls for f in s.tfs if (t, f) in s.cells]

"""Find the first release along one axis where a probe's outcome changes, in O(log n) cells.

"Which TRL release started rejecting `tokenizer`?" should cost a handful of
cells, not one per release. The search assumes the probe changes once along
the axis (monotonic); `scan` measures every release when that is in doubt.

Cells whose probe could not be measured (an `error`, an import failure that
leaves the keyword `untested`, an unresolvable pair with no import path) are
*skipped*, as `git bisect skip` does: they say nothing about the probe, so
they are neither side of the boundary.

- A skipped midpoint: its nearest untried neighbours inside the interval are
  tried instead (mid+1, mid-1, mid+2, ...).
- A skipped endpoint: the unmeasurable releases are assumed to form one block
  at that end (old releases missing a dependency, new ones refusing the fixed
  version), whose edge is itself found by bisection.
- When every release between the two sides is unmeasurable, the boundary is
  reported as lying somewhere in that block, naming its releases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from packaging.version import Version

from compat import probes as registry
from compat.contract import CellResult, Status

# "status" (the verdict) and every registry probe marked bisectable.
PROBES = ("status", *(p.key for p in registry.PROBES if p.bisect))


def probe_value(result: CellResult, probe: str) -> str | None:
    """The probe's value for a cell, or None when the cell could not measure it."""
    if result.status in (Status.ERROR, Status.FLAKY):
        return None
    if probe == "status":
        return str(result.status)
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; one of {', '.join(PROBES)}")
    value = result.probe(probe)
    return None if value is None or value in registry.by_key(probe).unmeasured else str(value)


@dataclass(frozen=True)
class Point:
    version: Version
    value: str | None  # None: unmeasurable
    result: CellResult


Measure = Callable[[Version], Point]


@dataclass(frozen=True)
class Side:
    """Which values lie after the boundary: --bad values, values outside --good, or != the first value."""

    good: frozenset[str] = frozenset()
    bad: frozenset[str] = frozenset()

    def after(self, value: str, reference: str) -> bool | None:
        """True: past the boundary; False: before it; None: neither (skip, like an unmeasurable cell)."""
        if self.bad:
            return True if value in self.bad else (False if not self.good or value in self.good else None)
        if self.good:
            return value not in self.good
        return value != reference


@dataclass(frozen=True)
class Outcome:
    """`kind`: found | no-change | already-changed | unmeasurable."""

    kind: str
    before: Point | None
    after: Point | None
    skipped: tuple[Point, ...]  # unmeasurable cells that were run
    between: tuple[Version, ...]  # releases between before and after that could not be measured
    runs: int  # cells measured in all


class _Memo:
    def __init__(self, versions: Sequence[Version], measure: Measure, side: Side) -> None:
        self.versions, self.measure, self.side = list(versions), measure, side
        self.points: dict[int, Point] = {}

    def __call__(self, i: int) -> Point:
        if i not in self.points:
            self.points[i] = self.measure(self.versions[i])
        return self.points[i]

    def skip(self, i: int) -> bool:
        """Unmeasurable, or (with both --good and --bad) a value in neither set."""
        value = self(i).value
        return value is None or self.side.after(value, value) is None


def _edge(at: _Memo, bad: int, good: int) -> int:
    """Index of the measurable release nearest `bad` (unmeasurable), given `good` is measurable."""
    while abs(good - bad) > 1:
        mid = (bad + good) // 2
        if at.skip(mid):
            bad = mid
        else:
            good = mid
    return good


def _near(at: _Memo, lo: int, hi: int) -> int | None:
    """A classifiable release strictly between lo and hi, tried outward from the middle."""
    mid = (lo + hi) // 2
    order = sorted(range(lo + 1, hi), key=lambda i: (abs(i - mid), i < mid))
    return next((i for i in order if not at.skip(i)), None)


def search(versions: Sequence[Version], measure: Measure, side: Side = Side()) -> Outcome:
    """Bisect `versions` (ascending) for the first release whose probe value is past the boundary."""
    at = _Memo(versions, measure, side)
    lo, hi = 0, len(versions) - 1

    def done(kind: str, before: int | None, after: int | None) -> Outcome:
        between: tuple[Version, ...] = ()
        if before is not None and after is not None:
            between = tuple(versions[i] for i in range(before + 1, after))
        skipped = tuple(at(i) for i in sorted(at.points) if at.skip(i))
        return Outcome(kind, at(before) if before is not None else None, at(after) if after is not None else None,
                       skipped, between, len(at.points))

    low_ok, high_ok = not at.skip(lo), not at.skip(hi)
    if not low_ok and not high_ok:
        return done("unmeasurable", None, None)
    if not low_ok:
        lo = _edge(at, lo, hi)
    if not high_ok:
        hi = _edge(at, hi, lo)
    ref = at(lo).value or ""
    first, last = side.after(ref, ref), side.after(at(hi).value or "", ref)
    if first:
        return done("already-changed", None, lo)
    if not last:
        return done("no-change", lo, hi)
    while hi - lo > 1:
        m = _near(at, lo, hi)
        if m is None:
            break  # everything in between is unmeasurable: the change lies somewhere in that block
        if side.after(at(m).value or "", ref):
            hi = m
        else:
            lo = m
    return done("found", lo, hi)


def scan(versions: Sequence[Version], measure: Measure, side: Side = Side()) -> tuple[list[Point], Point | None]:
    """Every release measured; the first one past the boundary (the answer bisection must match)."""
    points = [measure(v) for v in versions]
    measurable = [p for p in points if p.value is not None]
    ref = measurable[0].value if measurable else ""
    first = next((p for p in measurable if side.after(p.value or "", ref or "")), None)
    return points, first


def changes(points: Sequence[Point]) -> list[tuple[Point, Point]]:
    """Adjacent measured releases whose values differ; more than one means bisection's assumption fails."""
    measured = [p for p in points if p.value is not None]
    return [(a, b) for a, b in pairwise(measured) if a.value != b.value]

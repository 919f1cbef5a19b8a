"""reports/compat.json -> compat/findings.json: measured facts compressed into version ranges.

The adapter consults these rules instead of hand-written version checks.
Deterministic: the same results always give the same bytes (no timestamps,
sorted keys, rules in version order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from compat.cell.validate import SchemaError, validate
from compat.contract import FINDINGS_SCHEMA_VERSION, CellResult, ContractError, Resolution, Status, facts
from compat.harness import axes, environments, specs
from compat.harness.documents import schema
from compat.harness.files import atomic_write, target

PACKAGED = Path(__file__).resolve().parents[1] / "findings.json"  # the package's own, its locks in locks/ beside it


@dataclass(frozen=True, order=True)
class Rule:
    """`value` holds for every pair with trl in [trl_lo, trl_hi] and transformers in [tf_lo, tf_hi];
    `measured` are the pairs inside it that a cell ran (any other pair inside is inferred)."""

    trl_lo: Version
    trl_hi: Version
    tf_lo: Version
    tf_hi: Version
    value: str  # JSON text, so values of any shape compare and sort
    measured: tuple[tuple[Version, Version], ...] = ()

    def serialize(self) -> dict[str, Any]:
        return {"trl": _spec(self.trl_lo, self.trl_hi), "transformers": _spec(self.tf_lo, self.tf_hi),
                "value": json.loads(self.value), "measured": [[str(a), str(b)] for a, b in self.measured]}


def _spec(lo: Version, hi: Version) -> str:
    return f"=={lo}" if lo == hi else f">={lo},<={hi}"


def compress(points: dict[tuple[Version, Version], Any]) -> list[Rule]:
    """2-D run-length compression: merge along transformers per TRL row, then merge equal rows."""
    rows: dict[Version, list[tuple[Version, Version, str]]] = {}
    for trl in sorted({t for t, _ in points}):
        runs: list[list[Any]] = []
        for tf in sorted(f for t, f in points if t == trl):
            value = json.dumps(points[(trl, tf)], sort_keys=True)
            if runs and runs[-1][2] == value:
                runs[-1][1] = tf
            else:
                runs.append([tf, tf, value])
        rows[trl] = [tuple(r) for r in runs]
    rules: list[Rule] = []
    block: list[Version] = []
    ordered = sorted(rows)
    for i, trl in enumerate(ordered):
        block.append(trl)
        if i + 1 == len(ordered) or rows[ordered[i + 1]] != rows[trl]:
            for lo, hi, v in rows[trl]:
                inside = tuple(sorted((t, f) for t, f in points if block[0] <= t <= block[-1] and lo <= f <= hi))
                rules.append(Rule(block[0], block[-1], lo, hi, v, inside))
            block = []
    return sorted(rules)


def representative(results: Sequence[CellResult]) -> list[CellResult]:
    """One KTO result per pair: a resolution that trains wins (the pair works when its dependencies
    are right), then a failure about the pair itself over drift, then today's `latest` resolution.
    Forced runs test metadata, not installs; harness errors and flaky cells say nothing certain."""

    def score(r: CellResult) -> tuple[bool, ...]:
        return (r.status != Status.COMPATIBLE, bool(r.failure and r.failure.drift), r.resolution != Resolution.LATEST)

    best: dict[tuple[Version, Version], CellResult] = {}
    for r in results:
        if r.forced or not specs.adapter_covers(r.trainer) or r.status in (Status.ERROR, Status.FLAKY):
            continue
        if r.pair not in best or score(r) < score(best[r.pair]):
            best[r.pair] = r
    return list(best.values())


def _remedies(results: Sequence[CellResult]) -> dict[tuple[Version, Version], str]:
    """Where a drifted pair trains under another resolution mode, the measured remedy."""
    out = {}
    for r in results:
        if (specs.adapter_covers(r.trainer) and not r.forced and r.status == Status.COMPATIBLE
                and r.resolution == Resolution.AS_OF_RELEASE):
            out[r.pair] = (f"resolving its dependencies as of the pair's release (as-of-release) trains: "
                           f"kto-compat measured trl {r.trl} + transformers {r.transformers} that way")
    return out


def _measured_on(cells: Sequence[CellResult]) -> dict[str, str]:
    """The torch builds, Pythons and devices the cells behind the findings ran on."""
    def values(pick: Any) -> str:
        return ", ".join(sorted({str(v) for r in cells if (v := pick(r))}))

    devices = values(lambda r: (r.training or {}).get("device"))
    return {"torch": values(lambda r: r.environment.get("torch")), "python": values(lambda r: r.environment.get("python")),
            "devices": {"cpu": "CPU only (BF16 as CPU autocast)"}.get(devices, devices)}


def _facts(results: Sequence[CellResult]) -> tuple[list[CellResult], dict[str, Any], list[list[str]]]:
    """(representative cells, facts as rules, working pairs) of cells that share their further axes."""
    chosen = representative(results)
    points: dict[str, dict[tuple[Version, Version], Any]] = {}
    for r in chosen:
        for name, value in facts(r).items():
            if name != "drift":
                points.setdefault(name, {})[r.pair] = value
    remedies = _remedies(results)
    for r in results:  # drift under `latest` is reported even where another mode trains
        value = facts(r).get("drift") if specs.adapter_covers(r.trainer) else None
        if value is not None:
            points.setdefault("drift", {})[r.pair] = {**value, **({"remedy": remedies[r.pair]} if r.pair in remedies else {})}
    # "Working" pairs are advice (`pip install` this): only pairs that train with today's dependencies,
    # not those that need everything pinned as of their release.
    today = sorted({r.pair for r in results if specs.adapter_covers(r.trainer) and not r.forced and r.resolution == Resolution.LATEST
                    and r.status == Status.COMPATIBLE})
    rules = {name: [rule.serialize() for rule in compress(p)] for name, p in sorted(points.items())}
    return chosen, rules, [[str(a), str(b)] for a, b in today]


def build(results: Sequence[CellResult]) -> dict[str, Any]:
    """The pair's facts (the adapter's rules) come from cells with no further axis; cells measured at a
    further axis (datasets 3.6.0, ...) carry their facts per value of those axes, in ``by_axes``."""
    groups: dict[tuple[tuple[str, Version], ...], list[CellResult]] = {}
    for r in results:
        groups.setdefault(axes.further(r), []).append(r)
    chosen, rules, working = _facts(groups.get((), []))
    by_axes = []
    for key in sorted(k for k in groups if k):
        _, their_rules, their_working = _facts(groups[key])
        by_axes.append({"axes": axes.strings(key), "facts": their_rules, "working": their_working})
    ok = [r for r in chosen if r.status == Status.COMPATIBLE]
    # The line the adapter's advice quotes for a working pair: the one that reproduces its cell's lock.
    install = {environments.only(r.trl, r.transformers): environments.line_for(r) for r in groups.get((), [])
               if specs.adapter_covers(r.trainer) and not r.forced and r.resolution == Resolution.LATEST
               and r.status == Status.COMPATIBLE and r.lock}
    return {
        "schema_version": FINDINGS_SCHEMA_VERSION,
        "generated_from": {"cells": len(results), "pairs": len(chosen), "compatible": len(ok), **_measured_on(representative(results))},
        "facts": rules,
        "working": working,
        "install": dict(sorted(install.items())),
        **({"by_axes": by_axes} if by_axes else {}),
        "environments": environments.table(results),
    }


def same_axes(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Two further-axes mappings name the same distributions at equal versions (PEP 440)."""
    return a.keys() == b.keys() and all(Version(a[k]) == Version(b[k]) for k in a)


def measured_axes(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Further axes a findings file measured, each with its values (empty: a pair-only findings file)."""
    out: dict[str, list[str]] = {}
    for entry in data.get("by_axes", ()):
        for name, version in entry["axes"].items():
            out.setdefault(name, []).append(version)
    return out


def view(data: dict[str, Any], further: Mapping[str, str]) -> dict[str, Any] | None:
    """The findings as measured at ``further`` axes (``{"datasets": "3.6.0"}``): ``by_axes``' facts and working
    pairs for exactly those values in place of the top-level ones; the file itself when none are named; None
    where those values were not measured."""
    if not further:
        return data
    for entry in data.get("by_axes", ()):
        if same_axes(entry["axes"], further):
            return {**data, "facts": entry["facts"], "working": entry["working"]}
    return None


def dumps(findings: dict[str, Any]) -> str:
    try:
        validate(findings, schema("findings"), "findings.json being written")
    except SchemaError as exc:
        raise ContractError(str(exc)) from None
    return json.dumps(findings, indent=1, sort_keys=True) + "\n"


def write(results: Sequence[CellResult], path: Path) -> bool:
    """Write findings; returns whether the file changed."""
    text = dumps(build(results))
    real, _ = target(path, "-o")  # a FIFO or a device is refused before it is read
    try:
        if real.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write(path, text, "-o")
    return True


def load(path: Path) -> dict[str, Any]:
    """A findings file, validated: a ContractError names the file and what is wrong."""
    from compat.harness.documents import load_json

    if not path.exists():
        raise ContractError(f"{path}: no such findings file")
    data = load_json(path)
    try:
        validate(data, schema("findings"), str(path))
    except SchemaError as exc:
        raise ContractError(str(exc)) from None
    return data

"""reports/compat.json -> compat/findings.json: measured facts compressed into version ranges.

The adapter consults these rules instead of hand-written version checks.
Deterministic: the same results always give the same bytes (no timestamps,
sorted keys, rules in version order).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from .results import CellResult

FINDINGS_SCHEMA = 1


@dataclass(frozen=True, order=True)
class Rule:
    """`value` holds for every pair with trl in [trl_lo, trl_hi] and transformers in [tf_lo, tf_hi]."""

    trl_lo: Version
    trl_hi: Version
    tf_lo: Version
    tf_hi: Version
    value: str  # JSON text, so values of any shape compare and sort

    def serialize(self) -> dict[str, Any]:
        return {"trl": _spec(self.trl_lo, self.trl_hi), "transformers": _spec(self.tf_lo, self.tf_hi),
                "value": json.loads(self.value)}


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
        rows[trl] = [tuple(r) for r in runs]  # type: ignore[misc]
    rules: list[Rule] = []
    block: list[Version] = []
    ordered = sorted(rows)
    for i, trl in enumerate(ordered):
        block.append(trl)
        last = i + 1 == len(ordered) or rows[ordered[i + 1]] != rows[trl]
        if last:
            rules += [Rule(block[0], block[-1], lo, hi, v) for lo, hi, v in rows[trl]]
            block = []
    return sorted(rules)


def _fact(results: Sequence[CellResult], pick: Callable[[CellResult], Any]) -> list[dict[str, Any]]:
    points = {}
    for r in results:
        value = pick(r)
        if value is not None:
            points[(Version(r.trl), Version(r.transformers))] = value
    return [rule.serialize() for rule in compress(points)]


def _broken(r: CellResult) -> dict[str, Any] | None:
    # Drift breaks an environment, not the pair: a user whose dependencies did
    # not drift must not be refused, so drift is reported but never "broken".
    if r.status not in ("incompatible", "unresolvable") or r.failure is None or r.failure.drift:
        return None
    return {"status": r.status, "stage": r.failure.stage, "message": r.failure.message.splitlines()[0][:300],
            "raised_by": r.failure.raised_by}


def _drift(r: CellResult) -> dict[str, Any] | None:
    if r.failure is None or not r.failure.drift:
        return None
    return {"stage": r.failure.stage, "message": r.failure.message.splitlines()[0][:300], "resolution": r.resolution}


def representative(results: Sequence[CellResult]) -> list[CellResult]:
    """One result per pair: a resolution that trains wins (the pair works when its
    dependencies are right), then a failure about the pair itself over drift,
    then today's `latest` resolution. Forced runs test metadata, not installs."""

    def score(r: CellResult) -> tuple[bool, ...]:
        return (r.status != "compatible", bool(r.failure and r.failure.drift), r.status == "error", r.resolution != "latest")

    best: dict[tuple[str, str], CellResult] = {}
    for r in results:
        key = (r.trl, r.transformers)
        if not r.forced and (key not in best or score(r) < score(best[key])):
            best[key] = r
    return list(best.values())


def build(results: Sequence[CellResult]) -> dict[str, Any]:
    chosen = representative(results)
    ok = [r for r in chosen if r.status == "compatible"]
    return {
        "schema_version": FINDINGS_SCHEMA,
        "generated_from": {"cells": len(results), "pairs": len(chosen), "compatible": len(ok)},
        "facts": {
            "keyword": _fact(ok, lambda r: r.use_keyword()),
            "import_path": _fact(ok, lambda r: r.import_path),
            "format_mode": _fact(ok, lambda r: r.format_mode),
            "broken": _fact(chosen, _broken),
            "drift": _fact([r for r in results if not r.forced], _drift),
        },
        "working": sorted([[r.trl, r.transformers] for r in ok], key=lambda p: (Version(p[0]), Version(p[1]))),
    }


def dumps(findings: dict[str, Any]) -> str:
    return json.dumps(findings, indent=1, sort_keys=True) + "\n"


def write(results: Sequence[CellResult], path: Path) -> bool:
    """Write findings; returns whether the file changed."""
    text = dumps(build(results))
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True

"""What a cell says for findings.json: the facts the adapter and `check` read."""

from __future__ import annotations

from typing import Any

from compat import probes
from compat.contract.model import CellResult, KeywordState, Stage, Status

FINDINGS_SCHEMA_VERSION = 2


def facts(result: CellResult) -> dict[str, Any]:
    """What one cell says for findings.json: each registry finding (from a compatible cell),
    the tokenizer keyword to use, and whether the pair is broken or drifted."""
    out: dict[str, Any] = {}
    if result.forced or result.status in (Status.ERROR, Status.FLAKY):
        return out  # forced runs test metadata, faults say nothing; callers pick the trainers the adapter covers
    if result.status == Status.COMPATIBLE:
        out["keyword"] = result.use_keyword()
        for probe in probes.findings():
            out[probe.finding] = result.probe(probe.key)  # type: ignore[index]
    f = result.failure
    if f is not None and result.status in (Status.INCOMPATIBLE, Status.UNRESOLVABLE):
        first = f.message.splitlines()[0][:300] if f.message else ""
        if f.platform:
            # Measured to move with the platform (e.g. no triton beside a CPU torch): a user on another
            # platform must not be refused, so it is reported with its reason, never "broken".
            out["platform"] = {"stage": str(f.stage), "message": first, "reason": f.platform,
                               "resolution": result.resolution}
        elif f.drift is None:
            out["broken"] = {"status": str(result.status), "stage": str(f.stage), "message": first,
                             "raised_by": f.raised_by}
            refused = {kw: by for kw, by in sorted(result.keyword_raised_by.items())
                       if by and result.keyword.get(kw) == KeywordState.REJECTED}
            if refused and f.stage == Stage.CONSTRUCT:  # which class refused which keyword, both when both do
                out["broken"]["refused"] = refused
        else:
            # Drift breaks an environment, not the pair: a user whose dependencies did not drift
            # must not be refused, so it is reported, never "broken".
            out["drift"] = {"stage": str(f.stage), "message": first, "resolution": result.resolution,
                            "kind": f.drift.kind, "package": f.drift.package, "importer": f.drift.importer,
                            "cause": f.drift.describe()}
    return {k: v for k, v in out.items() if v is not None}


def point_findings(result: CellResult) -> dict[str, Any]:
    """findings.json for this one cell alone: every fact a rule covering exactly its pair."""
    pair = [str(result.trl), str(result.transformers)]
    rules = {name: [{"trl": f"=={pair[0]}", "transformers": f"=={pair[1]}", "value": value, "measured": [pair]}]
             for name, value in facts(result).items()}
    return {"schema_version": FINDINGS_SCHEMA_VERSION, "facts": rules,
            "working": [pair] if result.status == Status.COMPATIBLE and "keyword" in rules else []}



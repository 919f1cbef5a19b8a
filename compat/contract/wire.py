"""The observation wire format: how a cell suite's streamed records fold into one dict.

Shared by the cell suite (tests/cell/conftest.py folds its own record) and the host.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# The cell suite streams one JSON object per line to $COMPAT_CELL_RESULT (as
# pytest-reportlog does), so a crash keeps everything measured before it.
# Each record has exactly one of these keys, saying how it folds in:
#   {"probe": KEY, "value": V}                     a registry probe (compat.probes)
#   {"set": NAME, "value": V}                      training, adapter, environment, ...
#   {"merge": "a.b", "sub": K, "value": V}         obs["a"]["b"][K] = V (formatter outcomes, ...)
#   {"failure": STAGE, "message": ..., ...}        the first failure of a stage wins
#   {"warning": {...}}                             kept once
#   {"test": NODEID, "outcome": O, "stage": S, "message": M}   one pytest phase report
#   {"exit": N}                                    pytest's exit status, last



def fold_observations(lines: Iterable[str]) -> dict[str, Any]:
    """The observation record a cell suite streamed, folded into one dict (a torn last line is ignored)."""
    obs: dict[str, Any] = {"probes": {}, "failures": {}, "warnings": []}
    tests: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the line a crash cut short
        if not isinstance(rec, dict):
            continue
        if "probe" in rec:
            obs["probes"][rec["probe"]] = rec.get("value")
        elif "set" in rec:
            obs[rec["set"]] = rec.get("value")
        elif "merge" in rec:
            target = obs
            for part in str(rec["merge"]).split("."):
                target = target.setdefault(part, {})
            target[str(rec.get("sub"))] = rec.get("value")
        elif "failure" in rec:
            obs["failures"].setdefault(rec["failure"], {k: v for k, v in rec.items() if k != "failure"})
        elif "warning" in rec and rec["warning"] not in obs["warnings"]:
            obs["warnings"].append(rec["warning"])
        elif "test" in rec:
            seen = tests.setdefault(rec["test"], {"outcome": "passed"})
            rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 2}
            if rank.get(str(rec.get("outcome")), 0) > rank[seen["outcome"]]:
                seen.update(outcome=rec["outcome"], message=rec.get("message", ""), stage=rec.get("stage"))
        elif "exit" in rec:
            obs["pytest_exit"] = rec["exit"]
    if tests:
        obs["tests"] = {
            "passed": sum(t["outcome"] == "passed" for t in tests.values()),
            "skipped": sum(t["outcome"] == "skipped" for t in tests.values()),
            "failed": [{"id": nodeid, "outcome": t["outcome"], "message": t["message"], "stage": t.get("stage")}
                       for nodeid, t in tests.items() if t["outcome"] in ("failed", "error")],
        }
    return obs



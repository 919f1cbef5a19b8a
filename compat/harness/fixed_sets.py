"""Every fixed set of words a cell may hold, defined once: the contract's enums and the outcome words.

The JSON Schemas (compat/schema/*.json, published as docs/compat/schema/) and the page script (page
data ``sets``) are generated from here; tests/unit/test_fixed_sets.py fails where a copy differs.
After changing a set, regenerate the schemas:

    python -m compat.harness.fixed_sets
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

from compat.contract import DriftKind, KeywordState, Resolution, Stage, Status
from compat.harness import documents, faults
from compat.harness.documents import SCHEMA_DIR


class CaseOutcome(StrEnum):
    """A boundary case through a formatter; a raised exception is ``error:<its class name>``."""

    PASS = "pass"
    WRONG = "wrong"


CASE_ERROR_PREFIX = "error:"


class AdapterCheck(StrEnum):
    """Did the adapter do what it must on the cell (train a working pair, refuse a broken one)."""

    PASS = "pass"
    FAIL = "fail"


class AdapterOutcome(StrEnum):
    TRAINED = "trained"
    REFUSED = "refused"


class TestOutcome(StrEnum):
    """A cell test that did not pass: it failed, or erred in its set-up."""

    __test__ = False  # pytest: a name, not a test class
    FAILED = "failed"
    ERROR = "error"


# Why an error cell says nothing about its pair: the kinds and their words live with their detection.
FaultKind = StrEnum("FaultKind", {kind.upper(): kind for kind in faults.KINDS})  # type: ignore[misc]

# The cell suite (compat/cell, tests/cell) still spells the outcome words as literals: moving them here
# changes the suite hash and so every published cell; tests/unit/test_fixed_sets.py ties them together.
SETS: dict[str, type[StrEnum]] = {
    "status": Status, "stage": Stage, "keyword_state": KeywordState, "resolution": Resolution,
    "drift_kind": DriftKind, "case_outcome": CaseOutcome, "adapter": AdapterCheck,
    "adapter_outcome": AdapterOutcome, "test_outcome": TestOutcome, "fault_kind": FaultKind,
}

# Where each set sits in a schema: (schema, JSON path to its "enum" list, the set, whether null is allowed).
PLACES: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    ("compat", ("$defs", "status", "enum"), "status", False),
    ("compat", ("$defs", "stage", "enum"), "stage", False),
    ("compat", ("$defs", "keyword_state", "enum"), "keyword_state", False),
    ("compat", ("$defs", "drift", "properties", "kind", "enum"), "drift_kind", False),
    ("compat", ("$defs", "tests", "properties", "failed", "items", "properties", "outcome", "enum"), "test_outcome", False),
    ("compat", ("$defs", "failure", "properties", "fault", "enum"), "fault_kind", True),
    ("compat", ("$defs", "cell", "properties", "resolution", "enum"), "resolution", False),
    ("compat", ("$defs", "cell", "properties", "adapter", "enum"), "adapter", True),
    ("compat", ("$defs", "cell", "properties", "adapter_outcome", "enum"), "adapter_outcome", True),
)
OUTCOME_PATTERN = ("compat", ("$defs", "outcome", "pattern"))


def words(name: str) -> list[str]:
    return [m.value for m in SETS[name]]


def case_outcome_pattern() -> str:
    return "^(" + "|".join(words("case_outcome")) + "|" + CASE_ERROR_PREFIX + "[A-Za-z_][A-Za-z0-9_.]*)$"


def page_sets() -> dict[str, dict[str, str]]:
    """The sets as the page script uses them: ``D.sets.status.COMPATIBLE`` is ``"compatible"``."""
    return {name: {m.name: m.value for m in enum} for name, enum in SETS.items()}


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node


def schema_text(name: str) -> str:
    """The schema file ``name`` as generated: the committed file with every set's enum filled from here."""
    doc = documents.schema(name)
    for schema, path, which, nullable in PLACES:
        if schema == name:
            _at(doc, path)[path[-1]] = [*words(which), *([None] if nullable else [])]
    if OUTCOME_PATTERN[0] == name:
        _at(doc, OUTCOME_PATTERN[1])[OUTCOME_PATTERN[1][-1]] = case_outcome_pattern()
    return _dumps(doc) + "\n"


def _dumps(value: Any, indent: str = "") -> str:
    """JSON a person reads: a container that fits on one line stays on it; a longer one breaks per item."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(value, (dict, list)) or len(indent) + len(flat) <= 110:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return "[\n" + ",\n".join(inner + _dumps(v, inner) for v in value) + "\n" + indent + "]"


def schema_names() -> list[str]:
    return sorted(p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json"))


def main(argv: list[str] | None = None) -> int:
    """Rewrite compat/schema/*.json (and a published copy under docs/compat/schema, when given) from the sets."""
    out_dirs = [SCHEMA_DIR, *(Path(a) for a in (argv if argv is not None else sys.argv[1:]))]
    for name in schema_names():
        text = schema_text(name)
        for out in out_dirs:
            (out / f"{name}.schema.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

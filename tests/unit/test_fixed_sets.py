"""One definition per fixed set (compat/harness/fixed_sets.py): the schemas and the page script get
every status, stage, keyword state, resolution mode, drift kind and outcome word from it."""

from __future__ import annotations

import ast
import json
import re
from enum import StrEnum
from pathlib import Path

import pytest

from compat.harness import fixed_sets
from compat.harness.documents import load_document
from compat.harness.reports import html, vocab

ROOT = Path(__file__).resolve().parents[2]
PAGE_JS = ROOT / "compat" / "harness" / "reports" / "html_assets" / "page.js"
PAGE_CSS = PAGE_JS.with_name("page.css")
CELL_SUITE = ROOT / "compat" / "cell"
# Names in page.js that happen to equal a set's word but belong to another set of words (the exact code).
NOT_SET_WORDS = {
    ("adapter", 'adapter: "adapter formatter"'),  # the formatter kinds (legacy / adapter)
    ("adapter", 'id: "adapter"'),  # the adapter colouring's id
    ("pass", "pass: n - bad"),  # a count of passing cases
    ("unknown", "unknown: []"),  # the search box's words it did not understand
    ("platform", 'add("platform", m.platform)'),  # the header's platform the table ran on
}


@pytest.mark.parametrize("name", fixed_sets.schema_names())
@pytest.mark.parametrize("where", ["compat/schema", "docs/compat/schema"])
def test_the_schemas_are_generated_from_the_sets(name, where):
    on_disk = (ROOT / where / f"{name}.schema.json").read_text(encoding="utf-8")
    assert on_disk == fixed_sets.schema_text(name), \
        f"{where}/{name}.schema.json differs from the sets: run python -m compat.harness.fixed_sets docs/compat/schema"


def test_a_new_member_reaches_the_schema(monkeypatch):
    grown = StrEnum("DriftKind", {**{m.name: m.value for m in fixed_sets.SETS["drift_kind"]}, "RENAMED": "renamed-module"})
    outcomes = StrEnum("CaseOutcome", {"PASS": "pass", "WRONG": "wrong", "SKIPPED": "skipped"})
    monkeypatch.setitem(fixed_sets.SETS, "drift_kind", grown)
    monkeypatch.setitem(fixed_sets.SETS, "case_outcome", outcomes)
    doc = json.loads(fixed_sets.schema_text("compat"))
    assert doc["$defs"]["drift"]["properties"]["kind"]["enum"][-1] == "renamed-module"
    assert re.fullmatch(doc["$defs"]["outcome"]["pattern"], "skipped")
    assert re.fullmatch(doc["$defs"]["outcome"]["pattern"], "error:KeyError")
    assert not re.fullmatch(doc["$defs"]["outcome"]["pattern"], "passed")
    assert doc["$defs"]["cell"]["properties"]["adapter"]["enum"] == ["pass", "fail", None]


def _code_lines() -> list[tuple[int, str]]:
    return [(n, re.sub(r"(^|\s)//.*$", "", line)) for n, line in enumerate(PAGE_JS.read_text().splitlines(), 1)]


def test_the_page_script_spells_no_word_of_a_set():
    words = {m.value for enum in fixed_sets.SETS.values() for m in enum} | {vocab.PLATFORM}
    spelled = []
    for n, line in _code_lines():
        found = [m.group(1) for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', line)]
        found += [a or b for a, b in re.findall(r"'([^'\\]*)'|`([^`$]*)`", line)]
        found += [m.group(1) for m in re.finditer(r'[{,]\s*"?([\w-]+)"?\s*:', line)]
        for word in set(found) & words:
            if not any(w == word and hint in line for w, hint in NOT_SET_WORDS):
                spelled.append(f"page.js:{n}: {word!r} in {line.strip()[:90]}")
    assert not spelled, "page.js must take these from D.sets (fixed_sets.page_sets):\n" + "\n".join(spelled)


def test_every_set_member_the_page_names_exists():
    aliases = {m.group(1): m.group(2) for m in re.finditer(r"\b([A-Z]{2}) = D\.sets\.(\w+)", PAGE_JS.read_text())}
    assert set(aliases.values()) >= {"status", "keyword_state", "resolution", "adapter", "adapter_outcome"}
    names = {name: {m.name for m in enum} for name, enum in fixed_sets.SETS.items()}
    used = []
    for n, line in _code_lines():
        used += [(n, aliases[a], m) for a, m in re.findall(r"\b([A-Z]{2})\.([A-Z_]+)\b", line) if a in aliases]
        used += [(n, s, m) for s, m in re.findall(r"\bD\.sets\.(\w+)\.([A-Z_]+)\b", line)]
    assert len(used) > 20
    unknown = [f"page.js:{n}: {s}.{m}" for n, s, m in used if m not in names.get(s, ())]
    assert not unknown, unknown


def test_the_page_data_carries_every_set_and_its_words():
    data = html.page_data([], {})
    assert data["sets"] == fixed_sets.page_sets()
    assert data["sets"]["drift_kind"]["THIRD_PARTY"] == "third-party"
    assert set(data["driftWords"]) == set(data["sets"]["drift_kind"].values())
    assert set(data["resolutionWords"]) == set(data["sets"]["resolution"].values())
    assert set(data["stageMarks"]) == set(data["sets"]["stage"].values())
    assert data["stageLetters"].startswith("N install, I import, C building the trainer")
    assert data["platform"] == vocab.PLATFORM
    assert set(data["faultWords"]) == set(data["sets"]["fault_kind"].values())


def test_the_published_cells_hold_only_words_of_the_sets():
    """The cell suite still spells the outcome words itself (moving them changes the suite hash): what it
    wrote into the published table must be words of the sets."""
    cells = load_document(ROOT / "docs" / "compat" / "compat.json").cells
    seen: dict[str, set[str]] = {name: set() for name in fixed_sets.SETS}
    for c in cells:
        seen["status"].add(c.status)
        seen["resolution"].add(c.resolution)
        seen["keyword_state"].update(c.keyword.values())
        if c.failure:
            seen["stage"].add(c.failure.stage)
            if c.failure.fault:
                seen["fault_kind"].add(c.failure.fault)
            if c.failure.drift:
                seen["drift_kind"].add(c.failure.drift.kind)
        if c.adapter:
            seen["adapter"].add(c.adapter)
        if c.adapter_outcome:
            seen["adapter_outcome"].add(c.adapter_outcome)
        if c.tests:
            seen["test_outcome"].update(f.outcome for f in c.tests.failed)
        for outcomes in c.formatter.values():
            seen["case_outcome"].update(o for o in outcomes.values() if not o.startswith(fixed_sets.CASE_ERROR_PREFIX))
    for name, found in seen.items():
        assert found <= set(fixed_sets.words(name)), (name, found - set(fixed_sets.words(name)))
    assert {"compatible", "incompatible"} <= seen["status"] and {"trained", "refused"} <= seen["adapter_outcome"]


def test_the_readme_and_the_stylesheet_follow_the_sets():
    readme = re.sub(r"\s+", " ", (ROOT / "README.md").read_text(encoding="utf-8").replace("`", ""))
    assert vocab.STAGE_LETTERS in readme, "README's stage letters differ from vocab.STAGE_MARKS"
    css = PAGE_CSS.read_text(encoding="utf-8")
    for shown in vocab.SYMBOLS:  # every status, and the platform-bound mark
        assert f".c-{shown}" in css and css.count(f"--{shown}: var(--{shown}-") == 2, f"page.css lacks {shown}"


def _string_constants(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_the_cell_suite_writes_only_words_of_the_sets():
    """The cell suite spells the outcome words itself (moving them changes its hash): read, never run, here."""
    written: dict[str, set[str]] = {"adapter": set(), "adapter_outcome": set(), "case_outcome": set()}
    for path in [*CELL_SUITE.rglob("*.py"), *(ROOT / "tests" / "cell").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "set"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in ("adapter", "adapter_outcome")):
                written[node.args[0].value] |= _string_constants(node.args[1])
            if isinstance(node, ast.FunctionDef) and node.name == "classify":
                written["case_outcome"] |= {w for r in ast.walk(node) if isinstance(r, ast.Return) and r.value
                                            for w in _string_constants(r.value)}
    assert written["adapter"] == {"pass", "fail"} and written["adapter_outcome"] == {"trained", "refused"}
    for name, words in written.items():
        assert {w for w in words if not w.startswith(fixed_sets.CASE_ERROR_PREFIX)} <= set(fixed_sets.words(name)), name
    assert "wrong" in written["case_outcome"]

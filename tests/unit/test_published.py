"""The published table (docs/compat) keeps the promises the project makes about it.

Read offline from the committed files: every ✅ earned (adapter passed, no failed cell test, three
or more BF16 steps with finite losses), one suite hash on every cell and it is the current suite's,
the full profile measured, and the artefacts small enough for git and a browser.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from compat.contract import Status
from compat.harness.documents import load_document
from compat.harness.suite import suite_hash

REPO = Path(__file__).parents[2]
PUBLISHED = REPO / "docs" / "compat"


@pytest.fixture(scope="module")
def cells():
    return load_document(PUBLISHED / "compat.json").cells


def test_every_compatible_cell_earned_it(cells):
    for c in cells:
        if c.status != Status.COMPATIBLE:
            continue
        assert c.tests is not None and c.tests.failed == () and c.tests.passed > 0, c.id
        t = c.training or {}
        assert t.get("steps", 0) >= 3 and t.get("dtype") == "bfloat16", c.id
        assert len(t["losses"]) >= 3 and all(isinstance(x, float) and math.isfinite(x) for x in t["losses"]), c.id
        if c.trainer == "kto":  # the adapter covers KTOTrainer; a DPO cell has no adapter to check
            assert (c.adapter, c.adapter_outcome) == ("pass", "trained"), c.id


def test_every_cell_carries_the_current_suite(cells):
    assert {c.suite for c in cells} == {suite_hash(REPO)}


def test_the_full_profile_is_measured(cells):
    full = [c for c in cells if c.trainer == "kto" and c.resolution == "latest"]
    assert len(full) >= 1000
    assert sum(c.status == Status.ERROR for c in cells) == 0, [c.id for c in cells if c.status == Status.ERROR][:5]


def test_artefacts_stay_small():
    assert (PUBLISHED / "compat.json").stat().st_size < 5 * 2**20
    assert (PUBLISHED / "index.html").stat().st_size < 3 * 2**20


def test_the_page_and_schemas_are_published():
    for name in ("index.html", "COMPAT.md", "compat.svg", "schema/compat.schema.json", "schema/findings.schema.json"):
        assert (PUBLISHED / name).is_file(), name
    assert (PUBLISHED / "schema" / "compat.schema.json").read_bytes() == (REPO / "compat" / "schema" / "compat.schema.json").read_bytes()


def test_compat_md_is_worth_opening(cells):
    """COMPAT.md answers first: under 300 KB at the full profile, an install line for every TRL release that trains,
    and no path of the machine that built it (the full tables live in GRIDS.md beside it)."""
    text = (PUBLISHED / "COMPAT.md").read_text(encoding="utf-8")
    assert len(text.encode()) < 300_000
    trls = {str(c.trl) for c in cells if c.status == Status.COMPATIBLE}
    lines = [ln for ln in text.splitlines() if "`pip install " in ln]
    assert {t for t in trls if any(f" 'trl=={t}' " in ln and " 'torch==" in ln for ln in lines)} == trls
    for name in ("COMPAT.md", "GRIDS.md", "index.html"):
        published = (PUBLISHED / name).read_text(encoding="utf-8")
        assert "/work/" not in published and "site-packages" not in published, name

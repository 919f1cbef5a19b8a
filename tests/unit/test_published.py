"""The published table (docs/compat) keeps the promises the project makes about it.

Read offline from the committed files: every ✅ earned (adapter passed, no failed cell test, three
or more BF16 steps with finite losses), one suite hash on every cell and it is the current suite's,
the full profile measured, and the artefacts small enough for git and a browser.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from compat.contract import Status
from compat.harness import locks
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
    # A suite change is published with the rerun of every cell under it (docs/scale.md): one hash, the current one.
    current = suite_hash(REPO)
    assert Counter(c.suite for c in cells) == Counter({current: len(cells)})
    assert json.loads((PUBLISHED / "compat.json").read_text(encoding="utf-8"))["suite"] == current  # the table's label
    assert "measured under an earlier cell suite" not in (PUBLISHED / "COMPAT.md").read_text(encoding="utf-8")


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
    """COMPAT.md answers first: under 300 KB at the full profile, and no path of the machine that built it (the full
    tables live in GRIDS.md beside it)."""
    text = (PUBLISHED / "COMPAT.md").read_text(encoding="utf-8")
    assert len(text.encode()) < 300_000
    for name in ("COMPAT.md", "GRIDS.md", "index.html"):
        published = (PUBLISHED / name).read_text(encoding="utf-8")
        assert "/work/" not in published and "site-packages" not in published, name


# --------------------------------------------------------------------------- the locks published with the table

LOCKS = PUBLISHED / "locks"
needs_locks = pytest.mark.skipif(not LOCKS.is_dir(), reason="docs/compat has no locks/ yet: the table predates locks "
                                                            "(they are published with the next full rerun)")


@needs_locks
def test_every_installed_cell_names_a_published_lock_and_each_is_stored_once(cells):
    named = {c.lock for c in cells if c.lock}
    # Every cell that installed under the current suite has one (cells awaiting a rerun predate locks).
    assert not [c.id for c in cells if c.environment and not c.lock and c.suite == suite_hash(REPO)][:5]
    assert {p.name for p in LOCKS.iterdir()} == {f"{lock}.txt" for lock in named}  # each once, none stale
    for lock in sorted(named):
        assert locks.lock_id((LOCKS / f"{lock}.txt").read_text(encoding="utf-8")) == lock  # its pins hash to its name


@needs_locks
def test_the_locks_stay_within_their_budget():
    assert sum(p.stat().st_size for p in LOCKS.iterdir()) < 5 * 2**20  # beside compat.json's 5 MB


@needs_locks
def test_the_package_ships_the_locks_its_findings_name():
    data = json.loads((REPO / "compat" / "findings.json").read_text(encoding="utf-8"))
    named = {row[7] for row in data["environments"]["cells"] if len(row) > 7 and row[7]}
    assert named and all((REPO / "compat" / "locks" / f"{lock}.txt").is_file() for lock in named)


@needs_locks
def test_compat_md_gives_every_trl_release_that_trains_its_reproducing_line(cells):
    text = (PUBLISHED / "COMPAT.md").read_text(encoding="utf-8")
    working = [c for c in cells if c.status == Status.COMPATIBLE and c.trainer == "kto"]
    # Releases whose working cells all carry the current suite (cells awaiting a rerun predate locks).
    trls = {str(c.trl) for c in working} - {str(c.trl) for c in working if c.suite != suite_hash(REPO)}
    assert trls
    lines = [ln for ln in text.splitlines() if "`kto-compat lock trl==" in ln and "&& uv pip sync lock.txt`" in ln]
    assert {t for t in trls if any(f"`kto-compat lock trl=={t},transformers==" in ln for ln in lines)} == trls

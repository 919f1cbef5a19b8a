"""The adapter's config-field tables hold only what published cells measured.

Each cell's ``config_fields`` probe lists which watched KTOConfig fields its pair has. A field the
adapter drops (CONFIG_REMOVABLE) must be measured present on some pair and absent on another; a
rename (CONFIG_RENAMES) must be measured with either name alone; a field only watched
(CONFIG_WATCH_ONLY) must not have changed anywhere measured, or it belongs in one of the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compat.cell.config_names import CONFIG_REMOVABLE, CONFIG_RENAMES, CONFIG_WATCH, CONFIG_WATCH_ONLY
from compat.harness.documents import load_document

PUBLISHED = Path(__file__).parents[2] / "docs" / "compat" / "compat.json"


@pytest.fixture(scope="module")
def measured() -> list[set[str]]:
    cells = load_document(PUBLISHED).cells
    out = [set(filter(None, str(c.probe("config_fields")).split(","))) for c in cells
           if c.trainer == "kto" and c.probe("config_fields") is not None]
    assert len(out) >= 100, "too few cells measured config_fields to judge the tables"
    return out


@pytest.mark.parametrize("name", CONFIG_REMOVABLE)
def test_a_dropped_field_was_measured_present_and_absent(measured: list[set[str]], name: str) -> None:
    present = sum(name in fields for fields in measured)
    assert 0 < present < len(measured), f"{name}: present on {present} of {len(measured)} measured pairs"


@pytest.mark.parametrize(("new", "old"), CONFIG_RENAMES)
def test_a_rename_was_measured_with_one_name_alone(measured: list[set[str]], new: str, old: str) -> None:
    assert any(new in f and old not in f for f in measured) or any(old in f and new not in f for f in measured)
    assert any(new in f for f in measured) and any(old in f for f in measured), (new, old)


@pytest.mark.parametrize("name", CONFIG_WATCH_ONLY)
def test_a_watched_field_never_measured_changing_is_not_translated(measured: list[set[str]], name: str) -> None:
    present = sum(name in fields for fields in measured)
    assert present in (0, len(measured)), f"{name} changes across measured pairs: move it to CONFIG_REMOVABLE"


def test_the_probe_watches_every_table() -> None:
    names = {n for pair in CONFIG_RENAMES for n in pair} | set(CONFIG_REMOVABLE) | set(CONFIG_WATCH_ONLY)
    assert set(CONFIG_WATCH) == names
    assert not set(CONFIG_REMOVABLE) & set(CONFIG_WATCH_ONLY)

"""An inferred answer says so once per pair, naming the measured pairs nearest to it.

Host-side: the adapter module is imported without trl; ``lookup`` only reads findings.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from compat.cell import adapter

MEASURED = [["0.12.2", "4.46.3"], ["0.12.2", "4.45.2"], ["0.13.0", "4.46.3"], ["0.19.1", "4.57.6"],
            ["0.20.0", "4.57.6"], ["0.11.4", "4.38.2"]]
FINDINGS: dict[str, Any] = {
    "schema_version": 2,
    "facts": {
        "keyword": [{"trl": ">=0.12,<0.21", "transformers": ">=4.38,<5", "value": "processing_class", "measured": MEASURED}],
        "format_mode": [{"trl": ">=0.12,<0.21", "transformers": ">=4.38,<5", "value": "text", "measured": MEASURED}],
    },
    "working": MEASURED,
}


@pytest.fixture(autouse=True)
def findings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter, "FINDINGS", FINDINGS)
    monkeypatch.setattr(adapter, "_warned", set())
    adapter.findings.cache_clear()
    yield
    adapter.findings.cache_clear()


def inferred(calls: list[tuple[str, tuple[str, str]]]) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for fact, pair in calls:
            adapter.lookup(fact, pair, warn=True)
    return [str(w.message) for w in seen if issubclass(w.category, adapter.InferredPairWarning)]


def test_a_measured_pair_is_not_called_inferred() -> None:
    assert inferred([("keyword", ("0.12.2", "4.46.3")), ("format_mode", ("0.12.2", "4.46.3"))]) == []


def test_one_warning_per_pair_naming_the_nearest_measured_pairs() -> None:
    messages = inferred([("keyword", ("0.12.1", "4.46.3")), ("format_mode", ("0.12.1", "4.46.3")),
                         ("keyword", ("0.19.1", "4.56.2"))])
    assert len(messages) == 2, messages
    first, second = messages
    assert "trl 0.12.1 + transformers 4.46.3 was not measured" in first
    # Same transformers first, then the fewest minors apart; the far corner (0.19/0.20 x 4.57) is not cited.
    assert "trl 0.12.2 + transformers 4.46.3" in first and "trl 0.13.0 + transformers 4.46.3" in first
    assert "0.19.1" not in first and "0.20.0" not in first
    assert "trl 0.19.1 + transformers 4.57.6" in second and "4.38.2" not in second


def test_closest_ranks_same_trl_then_same_transformers() -> None:
    assert adapter.closest(("0.12.2", "4.50.0"), MEASURED, limit=3) == [
        ("0.12.2", "4.46.3"), ("0.12.2", "4.45.2"), ("0.13.0", "4.46.3")]

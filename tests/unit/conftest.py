"""Host-side unit tests: no trl/transformers/torch, no network."""

from __future__ import annotations

from packaging.version import Version
import pytest

from compat.harness.index import Release


def releases(*versions: str, yanked: tuple[str, ...] = ()) -> list[Release]:
    return [Release(Version(v), v in yanked, f"2025-01-{i + 1:02d}T00:00:00Z") for i, v in enumerate(versions)]


INDEX = {
    "trl": releases("0.11.0", "0.11.4", "0.12.0", "0.12.1", "0.12.2", "0.13.0", "1.0.0", "1.1.0rc1", "1.1.0", yanked=("0.12.1",)),
    "transformers": releases("4.45.0", "4.45.2", "4.46.3", "5.0.0"),
}


@pytest.fixture
def lister():
    return lambda name: INDEX[name]

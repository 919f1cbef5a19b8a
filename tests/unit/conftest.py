"""Host-side unit tests: no trl/transformers/torch, no network."""

from __future__ import annotations

import http.server
import importlib.util
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from compat.harness.index import Release


def releases(*versions: str, yanked: tuple[str, ...] = ()) -> list[Release]:
    return [Release(Version(v), v in yanked, f"2025-01-{i + 1:02d}T00:00:00Z") for i, v in enumerate(versions)]


INDEX = {
    "trl": releases("0.11.0", "0.11.4", "0.12.0", "0.12.1", "0.12.2", "0.13.0", "1.0.0", "1.1.0rc1", "1.1.0", yanked=("0.12.1",)),
    "transformers": releases("4.45.0", "4.45.2", "4.46.3", "5.0.0"),
    "datasets": releases("2.21.0", "3.5.0", "3.6.0", "4.0.0"),  # a further axis (tests/unit/test_axes.py)
    "torch": releases("2.5.1", "2.13.0"),
}


def _console_script(name: str) -> bool:
    return (Path(sys.executable).parent / name).exists() or shutil.which(name) is not None


def _uv() -> bool:
    from compat.harness.envs import EnvError, uv_bin

    try:
        uv_bin()
    except EnvError:
        return False
    return True


# Optional tools some tests drive for real; where one is absent those tests are skipped, saying which and why,
# never failed and never counted as passing. `nox -s tests` (the test and plot extras) has them all.
NEEDS: dict[str, tuple[Callable[[], bool], str]] = {
    "uv": (_uv, "uv is not installed (the matrix and test extras bring it)"),
    "matplotlib": (lambda: importlib.util.find_spec("matplotlib") is not None,
                   "matplotlib is not installed (the plot extra): no compat.svg to publish"),
    "zizmor": (lambda: _console_script("zizmor"), "zizmor is not installed (the test extra)"),
    "check-jsonschema": (lambda: _console_script("check-jsonschema"), "check-jsonschema is not installed (the test extra)"),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*tools): skip, naming the tool, where an optional tool is absent")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        for tool in mark.args:
            present, why = NEEDS[tool]
            if not present():
                pytest.skip(why)


@pytest.fixture
def lister():
    return lambda name: INDEX[name]


@pytest.fixture
def not_found_index():
    """A package index on loopback that answers 404 to everything, like a broken mirror."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/simple"
    server.shutdown()

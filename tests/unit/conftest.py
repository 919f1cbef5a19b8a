"""Host-side unit tests: no trl/transformers/torch, no network."""

from __future__ import annotations

import http.server
import threading

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

"""Peak of a sampled quantity while a block runs: how cells measure CPU memory.

Cell code with no ML imports. ``ru_maxrss`` is a lifetime high-water mark
(import peaks would hide training's), so resident memory is sampled from
/proc/self/statm on a background thread instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def rss_bytes() -> int:
    """Resident set size of this process, in bytes (Linux /proc)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_available() -> bool:
    try:
        rss_bytes()
    except (OSError, IndexError, ValueError):
        return False
    return True


class Peak:
    """Peak of ``read()`` above its value at construction, sampled every ``interval`` seconds."""

    def __init__(self, read: Callable[[], int], interval: float = 0.002) -> None:
        self._read, self._interval = read, interval
        self._stop = threading.Event()
        self.start = self.peak = read()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._read())

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())

    @property
    def delta(self) -> int:
        return self.peak - self.start

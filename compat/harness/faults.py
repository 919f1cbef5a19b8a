"""Fault kinds: why an `error` cell says nothing about its pair, defined once.

Host side. Only a pair's own behaviour is a verdict. Resource exhaustion (memory, disk) and the
machine's own state (uv offline, an unusable uv cache, a missing tool) can make a compatible pair
fail at any stage, so a failure showing their marks is an `error` with one of these kinds: never
cached, never replacing a measured verdict. The patterns are the words the failing layer itself
prints (Python, the C++ allocators torch uses, the kernel's errno text, uv).
"""

from __future__ import annotations

import errno
import re

KINDS = {
    "interrupt": "the run was interrupted (SIGINT/SIGTERM)",
    "signal": "a process was killed by a signal",
    "network": "uv could not reach the index",
    "index": "the index denied a release or package the planner saw",
    "offline": "uv ran offline and its cache lacks the pair's packages",
    "cache": "uv's cache cannot be used (unwritable or missing)",
    "memory": "the machine ran out of memory (MemoryError, an allocator failure, the OOM killer)",
    "disk": "the disk is full (or over quota)",
    "tool": "a tool the harness runs (uv) is missing or cannot be executed",
    "harness": "the harness itself failed",
}

_MEMORY = re.compile(
    r"\bMemoryError\b|OutOfMemoryError|out of memory|can't allocate memory|Cannot allocate memory|std::bad_alloc"
    r"|could not create a primitive|failed to allocate|Unable to allocate|ENOMEM"
    r"|memory allocation of \d+ bytes failed", re.IGNORECASE)  # the last: Rust's (uv's) allocator
_DISK = re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|EDQUOT", re.IGNORECASE)
_OFFLINE = re.compile(r"was not found in the cache|network (?:was|is) disabled", re.IGNORECASE)
_CACHE = re.compile(r"Failed to initialize cache", re.IGNORECASE)


def exhausted(text: str) -> str | None:
    """"memory" or "disk" when ``text`` (a cell's output or observations) shows the resource ran out."""
    if _DISK.search(text):
        return "disk"
    if _MEMORY.search(text):
        return "memory"
    return None


def of_uv(text: str) -> str | None:
    """The machine-side reason a uv step failed, from uv's own words; None: not one of these."""
    if _CACHE.search(text):
        return "cache"
    if _OFFLINE.search(text):
        return "offline"
    return exhausted(text)


def of_oserror(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk"
    if exc.errno == errno.ENOMEM:
        return "memory"
    return "harness"

"""What releases the package index really has (PEP 691 JSON simple API).

Listings are cached on disk for an hour so `nox -l` and reruns don't hit the
network every time; `max_age=0` forces a refresh.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename, parse_sdist_filename
from packaging.version import InvalidVersion, Version

from compat.contract import CompatError
from compat.harness.files import atomic_write

DEFAULT_INDEX = "https://pypi.org/simple"
_ACCEPT = "application/vnd.pypi.simple.v1+json"


class IndexUnavailable(CompatError, RuntimeError):
    """The index could not be read (network, HTTP, or bad payload) and no cached listing helps."""


@dataclass(frozen=True, order=True)
class Release:
    version: Version
    yanked: bool = False
    uploaded: str = ""  # ISO time of the earliest file; drives as-of-release resolution


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX


def _version_of(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (ValueError, InvalidVersion):
        return None


def parse_listing(payload: dict) -> list[Release]:
    """Group a simple-API JSON listing's files into releases."""
    if not isinstance(payload, dict) or not isinstance(payload.get("files", []), list):
        raise ValueError("not a PEP 691 project listing")
    seen: dict[Version, list[dict]] = {}
    for f in payload.get("files", []):
        if not isinstance(f, dict):
            continue
        v = _version_of(f.get("filename", ""))
        if v is not None:
            seen.setdefault(v, []).append(f)
    releases = []
    for v, files in seen.items():
        yanked = all(bool(f.get("yanked")) for f in files)
        times = sorted(f.get("upload-time", "") for f in files if f.get("upload-time"))
        releases.append(Release(v, yanked, times[0] if times else ""))
    return sorted(releases)


def fetch(name: str, cache_dir: Path, max_age: float = 3600.0, url: str | None = None) -> list[Release]:
    name = canonicalize_name(name)
    base = (url or index_url()).rstrip("/")
    cache = cache_dir / f"{name}.json"
    if cache.exists() and time.time() - cache.stat().st_mtime < max_age:
        cached = _read_cache(cache)
        if cached is not None:
            return cached
    req = urllib.request.Request(f"{base}/{name}/", headers={"Accept": _ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = json.loads(resp.read())
        releases = parse_listing(payload)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        stale = _read_cache(cache) if cache.exists() else None
        if stale is not None:  # stale is better than nothing when the index is down
            return stale
        raise IndexUnavailable(f"cannot list {name} from {base}: {exc}"
                               + (f" (and the cached listing {cache} is unreadable)" if cache.exists() else "")) from None
    try:  # the cache only saves a request next time: failing to write it is no reason to stop
        atomic_write(cache, json.dumps(payload))
    except CompatError:
        pass
    return releases


def _read_cache(cache: Path) -> list[Release] | None:
    """A cached listing, or None when it is unreadable or corrupt (then it is refetched)."""
    try:
        return parse_listing(json.loads(cache.read_text(encoding="utf-8")))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def lister(config: Path, max_age: float = 3600.0):
    """`name -> releases` for planning, cached beside the project's matrix.toml."""
    from compat.harness.config import state_dir

    cache = state_dir(config) / "index"
    return lambda name: fetch(name, cache, max_age=max_age)

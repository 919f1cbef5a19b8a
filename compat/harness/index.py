"""What releases the package index really has (PEP 691 JSON simple API).

Listings are cached on disk for an hour so `nox -l` and reruns don't hit the
network every time; `max_age=0` forces a refresh.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from compat.contract import CompatError
from compat.harness.documents import MAX_BYTES, load_json, loads
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


_USERINFO = re.compile(r"(?<=://)([^/@\s:]*)(:[^/@\s]*)?@")


def redact(text: str) -> str:
    """``text`` with the secret of every URL in it masked as pip does: ``https://user:****@host``, and a
    user alone (a token) as ``https://****@host``."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}:****@" if m.group(2) else "****@", text)


def _request(url: str) -> urllib.request.Request:
    """A request for ``url``; credentials in it (pip's user:password@host form) become a Basic
    Authorization header, which urllib does not derive from the URL itself."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": _ACCEPT}
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return urllib.request.Request(url, headers=headers)


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
        name = f.get("filename")
        v = _version_of(name) if isinstance(name, str) else None
        if v is not None:
            seen.setdefault(v, []).append(f)
    releases = []
    for v, files in seen.items():
        yanked = all(bool(f.get("yanked")) for f in files)
        times = sorted(f["upload-time"] for f in files if isinstance(f.get("upload-time"), str) and f["upload-time"])
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
    try:
        req = _request(f"{base}/{name}/")
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = loads(resp.read(MAX_BYTES + 1).decode("utf-8", errors="replace"), f"{redact(base)}/{name}/")
        releases = parse_listing(payload)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        stale = _read_cache(cache) if cache.exists() else None
        if stale is not None:  # stale is better than nothing when the index is down
            return stale
        raise IndexUnavailable(redact(f"cannot list {name} from {base}: {exc}")
                               + (f" (and the cached listing {cache} is unreadable)" if cache.exists() else "")) from None
    with contextlib.suppress(CompatError):  # the cache only saves a request next time: no reason to stop
        atomic_write(cache, json.dumps(payload))
    return releases


def _read_cache(cache: Path) -> list[Release] | None:
    """A cached listing, or None when it is unreadable or corrupt (then it is refetched)."""
    try:
        return parse_listing(load_json(cache))
    except ValueError:  # ContractError included: unreadable, too large, too deep, not JSON
        return None


def lister(config: Path, max_age: float = 3600.0):
    """`name -> releases` for planning, cached beside the project's matrix.toml."""
    from compat.harness.config import state_dir

    cache = state_dir(config) / "index"
    listed: dict[str, list[Release]] = {}

    def releases(name: str) -> list[Release]:  # each listing read and parsed once per run, not once per cell
        key = canonicalize_name(name)
        if key not in listed:
            listed[key] = fetch(name, cache, max_age=max_age)
        return listed[key]

    return releases

"""Bytecode shared between cell environments that hold the same files.

Importing torch + transformers + trl from source costs 12-14 s on 2 cores and
about 5 s with warm bytecode. Cell environments never keep bytecode on
machines that set PYTHONDONTWRITEBYTECODE, and each environment is new for
each pair, yet uv hard-links every installed file from its cache: the torch
files of every cell are the very same inodes. So the harness keeps one store
of compiled ``.pyc`` files keyed by the source file's identity (device, inode,
size, mtime): after a cell runs, the bytecode its suite wrote is linked into
the store; before a cell runs, the store's bytecode is linked into the new
environment's ``__pycache__`` dirs. Python still validates every ``.pyc``
against its source (mtime and size in the header) and recompiles on any
mismatch, so a stale entry costs time, never correctness.

Host side: os and pathlib only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TAG = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
SEEDED = ".compat-bytecode"  # in an environment: seeded and harvested once


def _key(stat: os.stat_result) -> str:
    return f"{stat.st_dev:x}-{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"


def _site_packages(env: Path) -> list[Path]:
    return sorted(env.glob("lib/python*/site-packages"))


def _tag(env: Path) -> str:
    """The cell interpreter's cache tag, from its lib/pythonX.Y directory (not the host's Python)."""
    libs = sorted(env.glob("lib/python3.*"))
    return f"cpython-{libs[0].name.removeprefix('python').replace('.', '')}" if libs else TAG


def _link(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        return False  # another filesystem, or a store being pruned: the cell just compiles


def seed(env: Path, store: Path) -> int:
    """Link the store's bytecode for every source file of ``env`` it has; returns how many."""
    if not store.is_dir():
        return 0
    known = set(os.listdir(store))  # one listing instead of a lookup per source file
    tag, linked = _tag(env), 0
    for site in _site_packages(env):
        for root, dirs, files in os.walk(site):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            cache: Path | None = None
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(root, name)
                try:
                    key = _key(os.stat(path))
                except OSError:
                    continue
                if key not in known:
                    continue
                stored = store / key
                if cache is None:
                    cache = Path(root) / "__pycache__"
                    cache.mkdir(exist_ok=True)
                linked += _link(stored, cache / f"{name[:-3]}.{tag}.pyc")
    return linked


def seeded(env: Path) -> bool:
    """Whether ``env`` was seeded and harvested by an earlier cell: it holds every ``.pyc`` its suite
    needs already, so seeding it again would only stat each source file to link nothing."""
    return (env / SEEDED).exists()


def forget(env: Path) -> None:
    """The next harvest of ``env`` reads every cache (a suite was killed before its harvest)."""
    (env / SEEDED).unlink(missing_ok=True)


def stamp(env: Path) -> float | None:
    """Just before a suite runs: the time a later ``harvest(since=...)`` reads caches changed after,
    taken from the environment's own filesystem clock. None (read every cache) on a first harvest."""
    if not seeded(env):
        return None
    mark = env / ".compat-suite-start"
    mark.touch()
    return mark.stat().st_mtime


def harvest(env: Path, store: Path, since: float | None = None) -> int:
    """Link every ``.pyc`` the cell wrote into the store under its source's identity; returns how many were new.

    ``since`` (a time before the suite started): only ``__pycache__`` dirs changed after it are read.
    Python puts a new ``.pyc`` in place by renaming, which touches its directory, and seeded links
    are in the store already.
    """
    tag, added = _tag(env), 0
    store.mkdir(parents=True, exist_ok=True)
    for site in _site_packages(env):
        for root, dirs, _files in os.walk(site):
            if "__pycache__" not in dirs:
                continue
            dirs.remove("__pycache__")
            cache = Path(root) / "__pycache__"
            try:
                if since is not None and cache.stat().st_mtime < since:
                    continue
            except OSError:
                continue
            for pyc in cache.glob(f"*.{tag}.pyc"):
                source = cache.parent / f"{pyc.name[: -len(f'.{tag}.pyc')]}.py"
                try:
                    key = _key(source.stat())
                except OSError:
                    continue
                added += _link(pyc, store / key)
    (env / SEEDED).touch()
    return added


def prune(store: Path, max_bytes: int) -> tuple[int, int]:
    """Keep the store under ``max_bytes``: entries no environment links to any more go first, oldest
    first (an entry only costs a recompile if it is needed again). Returns (removed, bytes left)."""
    if not store.is_dir():
        return 0, 0
    entries = []
    for p in store.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_nlink > 1, st.st_mtime, st.st_size, p))
    total = sum(e[2] for e in entries)
    removed = 0
    for _linked, _mtime, nbytes, p in sorted(entries):  # unlinked before linked, then oldest first
        if total <= max_bytes:
            break
        p.unlink(missing_ok=True)
        total -= nbytes
        removed += 1
    return removed, total

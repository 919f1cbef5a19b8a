"""Each installed cell's lock: every distribution its environment was synced from, exact.

A verdict holds for the environment that was measured, so the table publishes
what that environment was: ``locks/<id>.txt`` beside compat.json (the
``uv pip compile`` output the cell synced from, torch's build included), one
file per distinct lock, named by the digest of its pins. A cell names its
lock (``CellResult.lock``); this module reads, checks and carries those files
from results directories to the report that publishes them, and to the
package (beside its findings.json), so `kto-compat lock` and `check` work with
no checkout and no network. Host side; reads text only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from compat.contract import CellResult, ContractError
from compat.harness.config import ConfigError
from compat.harness.documents import read_text
from compat.harness.envs import pins_digest
from compat.harness.files import atomic_write

ID = re.compile(r"^[0-9a-f]{16}$")
MAX_BYTES = 2**20  # a lock is ~1 KB (about 55 pins); anything near this is not one
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")


def lock_id(text: str) -> str:
    """The id a lock is published under: the digest of its pins (comments and blank lines aside)."""
    return pins_digest(text)[:16]


def path(directory: Path, lock: str) -> Path:
    """``directory/locks/<lock>.txt``; an id that is not 16 hex digits never becomes a path."""
    if not ID.match(lock):
        raise ConfigError(f"lock id {lock[:40]!r}: not 16 hex digits")
    return directory / "locks" / f"{lock}.txt"


def read(directory: Path, lock: str) -> str:
    """A lock's text, checked: a regular file whose pins hash to its name (an edited lock is refused)."""
    where = path(directory, lock)
    if where.is_symlink():
        raise ConfigError(f"{where}: is a symbolic link; a lock is published as a plain file")
    try:
        text = read_text(where, MAX_BYTES)
    except ContractError as exc:
        raise ConfigError(str(exc)) from None
    if lock_id(text) != lock:
        raise ConfigError(f"{where}: its pins hash to {lock_id(text)}, not {lock} (edited or corrupt)")
    return text


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a lock as {canonical name: version}; comments and options are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _PIN.match(line.split("#", 1)[0].split(";", 1)[0].strip())
        if m:
            out[canonicalize_name(m["name"])] = m["version"]
    return out


def named(cells: Iterable[CellResult]) -> dict[str, str]:
    """lock id -> the first cell (by id) that names it."""
    out: dict[str, str] = {}
    for c in sorted(cells, key=lambda c: c.id):
        if c.lock:
            out.setdefault(c.lock, c.id)
    return out


def verify(directory: Path, cells: Iterable[CellResult], source: str | None = None) -> None:
    """Refuse a document one of whose cells names a lock that is not beside it (one line, the first such cell)."""
    for lock, cell in sorted(named(cells).items(), key=lambda kv: kv[1]):
        if not path(directory, lock).is_file():
            raise ConfigError(f"{source or directory}: cell {cell} names lock {lock}, but {path(directory, lock)} "
                              "is not there (a report is published with its locks/)")


def carry(sources: Sequence[Path], out: Path, cells: Iterable[CellResult]) -> int:
    """Every lock a cell names into ``out/locks/``, from the first of ``sources`` that holds it (put the
    newest first); files no cell names are removed. A lock no source holds is refused before anything is
    written. Returns how many locks ``out`` publishes."""
    wanted = named(cells)
    texts: dict[str, str] = {}
    for lock, cell in sorted(wanted.items(), key=lambda kv: kv[1]):
        src = next((d for d in sources if path(d, lock).is_file()), None)
        if src is None:
            raise ConfigError(f"cell {cell} names lock {lock}, which none of {', '.join(map(str, sources))} holds "
                              f"(locks/{lock}.txt)")
        texts[lock] = read(src, lock)
    for lock, text in sorted(texts.items()):
        target = path(out, lock)
        if not (target.is_file() and not target.is_symlink() and target.read_text(encoding="utf-8") == text):
            atomic_write(target, text)
    folder = out / "locks"
    if folder.is_dir():
        for stale in folder.iterdir():
            if stale.suffix == ".txt" and stale.stem not in wanted:
                stale.unlink()
    return len(texts)


@dataclass
class Store:
    """The locks of one findings file (``directory/locks``), each read once when first asked for."""

    directory: Path
    _read: dict[str, dict[str, str] | None] = field(default_factory=dict)

    def pins(self, lock: str | None) -> dict[str, str] | None:
        """The lock's pins; None where the cell has no lock or its file is not shipped."""
        if not lock:
            return None
        if lock not in self._read:
            try:
                self._read[lock] = pins(read(self.directory, lock))
            except ConfigError:
                self._read[lock] = None
        return self._read[lock]

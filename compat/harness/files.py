"""Writing files so that no reader ever sees half of one, and a set of files changes together.

Host side. One helper for every file the harness writes (cell results, the
result cache, reports, findings, the exported adapter): write to a temporary
file beside the target, then rename over it.

Every output path goes through ``target()`` first, before anything is read or
written: an existing target that is not a regular file (a device, a FIFO, a
socket, a directory) is refused, because renaming over it would replace a
device node with a file and reading it could block forever or never end. A
symlink is written through: the file it points at is replaced and the link
stays. An existing file keeps its mode, and a temporary file never outlives
a failed write.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compat.harness.config import ConfigError

SYMLINKS = "a symlink is written through (the file it points at is replaced; the link stays)"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def target(path: Path, what: str = "") -> tuple[Path, int | None]:
    """Where a write to ``path`` lands (a symlink's target) and the mode it must keep (None: a new file).

    Refuses, with one line naming the path, an existing target that is not a regular file."""
    where = f"{what} {path}".strip()
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot write: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{where}: exists and is {kind(st.st_mode)}, not a regular file; refusing to read or "
                          "replace it (give a file path)")
    return real, stat.S_IMODE(st.st_mode)


def _stage(real: Path, mode: int | None, text: str) -> Path:
    """``text`` in a temporary file beside ``real``, with ``real``'s mode; removed again if writing fails."""
    tmp = real.with_name(f".{real.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, text: str, what: str = "") -> None:
    """Replace ``path`` with ``text`` in one rename; an unwritable or unsafe target is a ConfigError naming it."""
    real, mode = target(path, what)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        os.replace(_stage(real, mode, text), real)
    except OSError as exc:
        raise ConfigError(f"{f'{what} {path}'.strip()}: cannot write: {exc.strerror or exc}") from None


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n")


def write_set(directory: Path, files: Mapping[str, str]) -> None:
    """Write several files of one directory as a set: every one goes to a temporary file first,
    and only when all are written are they renamed into place, so a crash or an interrupt
    while rendering leaves the previous complete set (and no stray temporaries)."""
    targets = {name: target(directory / name) for name in files}  # every target checked before any is written
    staged: list[tuple[Path, Path]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            real, mode = targets[name]
            staged.append((_stage(real, mode, text), real))
        for tmp, real in staged:
            os.replace(tmp, real)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot write the reports: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)

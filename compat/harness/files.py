"""Writing files so that no reader ever sees half of one, and a set of files changes together.

Host side. One helper for every file the harness writes (cell results, the
result cache, reports, findings, the exported adapter): write to a temporary
file beside the target, then rename over it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compat.harness.config import ConfigError


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename; an unwritable target is a ConfigError naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n")


def write_set(directory: Path, files: Mapping[str, str]) -> None:
    """Write several files of one directory as a set: every one goes to a temporary file first,
    and only when all are written are they renamed into place, so a crash or an interrupt
    while rendering leaves the previous complete set (and no stray temporaries)."""
    staged: list[tuple[Path, Path]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            target = directory / name
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
            staged.append((tmp, target))
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot write the reports: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)

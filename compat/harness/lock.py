"""One run per results directory: a second run refuses instead of interleaving writes."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from compat.contract import CompatError


class LockedError(CompatError, RuntimeError):
    """Another run holds this results directory."""


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold `directory/.compat.lock` for the run; the kernel releases it if we die."""
    path = directory / ".compat.lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:  # a directory or a symlink where the lock file goes, a read-only results dir
        raise LockedError(f"{path}: cannot take the run lock: {exc.strerror or exc} (it must be a plain file "
                          "kto-compat can write)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise LockedError(f"{directory}: another compat run (pid {holder}) is using this results directory; "
                              "wait for it to finish or use a different --out") from None
        try:  # the holder's pid only helps the message above; a full disk must not stop the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


@contextmanager
def store(path: Path, exclusive: bool = False) -> Iterator[bool]:
    """The shared bytecode store: matrix runs hold it shared while they seed and harvest; only
    `bench`, which swaps the whole store aside, takes it exclusively, and never waits (it yields
    False when a run holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_SH)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def shared_env(path: Path) -> Iterator[None]:
    """Serialise use of one cell environment across runs with different results
    directories: a second run waits rather than rebuilding the venv under the first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

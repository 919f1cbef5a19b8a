"""Cell suites never outlive the harness that started them.

A suite runs in its own session (so a timeout can kill its whole process group). If the harness
is killed with SIGKILL it cannot clean up, and the suite would keep running, reparented to PID 1,
with no time limit, beside the rerun of the same cell. Two guards:

- the suite's process asks the kernel for SIGKILL when its parent dies (Linux PR_SET_PDEATHSIG);
- every running suite's session is recorded under ``.compat/running/`` with the harness's pid, and
  the next run ends the sessions whose harness is gone (anything the suite itself started included)
  before it starts a cell.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the pid files alone guard
    _prctl = None


def die_with_parent() -> None:
    """preexec_fn for a suite: SIGKILL when the harness dies. Resolved in the parent, so the child
    (between fork and exec) imports and allocates nothing of its own."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def record(directory: Path, session: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{session}.pid"
    path.write_text(str(os.getpid()))
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _members(session: int) -> list[int]:
    """Processes of ``session`` (/proc/PID/stat field 6), the leader's children included."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(session) and fields[0] not in ("Z", "X"):  # dead: only unreaped
            found.append(int(entry.name))
    return found


def end_stale(directory: Path) -> list[int]:
    """End every recorded suite session whose harness is no longer running; the sessions ended."""
    ended = []
    for path in sorted(directory.glob("*.pid")) if directory.is_dir() else ():
        try:
            session, harness = int(path.stem), int(path.read_text().strip() or 0)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if harness and _alive(harness):
            continue  # another run on this project is still using it
        members = _members(session)
        for pid in members:
            with contextlib.suppress(OSError):  # already gone
                os.kill(pid, signal.SIGKILL)
        if members:
            ended.append(session)
            deadline = time.monotonic() + 5  # SIGKILL lands asynchronously: gone before a cell starts
            while _members(session) and time.monotonic() < deadline:
                time.sleep(0.02)
        path.unlink(missing_ok=True)
    return ended

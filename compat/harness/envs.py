"""Cell environments with uv: resolve (seconds, no install), then sync into a venv.

uv is PyPI's `uv` package run as a subprocess. It shares its cache between
cells, so torch is downloaded and unpacked once and hard-linked afterwards.
uv ignores pip's configuration, so pip's index settings are passed through.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from compat.contract import CompatError, Resolution

from . import axes, faults
from .config import Settings
from .files import atomic_write
from .index import redact
from .plan import Cell


class EnvError(CompatError, RuntimeError):
    """uv failed for a reason that is not the pair's fault (e.g. no interpreter)."""


def uv_bin() -> str:
    explicit = os.environ.get("COMPAT_UV")
    if explicit:  # an explicit uv (tests point this at a fake); one that cannot run is a `tool` fault in _run
        return explicit
    try:
        from uv import find_uv_bin  # the PyPI package ships the binary

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise EnvError("uv not found: running cells needs it: pip install 'kto-compat[matrix]'") from None
        return found


def index_args(settings: Settings, environ: dict[str, str] | None = None) -> list[str]:
    """pip's PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_FIND_LINKS as uv flags, with pip's meaning.

    uv's default index strategy takes a package from the first index that has it at all; pip takes
    the best version across every index. With an extra index, that difference changes what resolves
    (a package the extra index also carries would come from it only), so kto-compat asks uv for pip's
    behaviour (`--index-strategy unsafe-best-match`). matrix.toml's torch index is different: it is
    passed as find-links to that index's torch page alone, so nothing but torch can come from it.
    """
    env = os.environ if environ is None else environ
    args: list[str] = []
    if env.get("PIP_INDEX_URL"):
        args += ["--index-url", env["PIP_INDEX_URL"]]
    extra = env.get("PIP_EXTRA_INDEX_URL", "").split()
    for url in extra:
        args += ["--extra-index-url", url]
    if extra:
        args += ["--index-strategy", "unsafe-best-match"]
    if settings.torch_index_url:
        args += ["--find-links", settings.torch_index_url.rstrip("/") + "/torch/"]
    for link in env.get("PIP_FIND_LINKS", "").split():
        args += ["--find-links", link]
    return args


# uv settings that change only how uv works, never which packages it can see or pick.
_UV_HOW = frozenset({"UV_CACHE_DIR", "UV_NO_PROGRESS", "UV_LINK_MODE", "UV_CONCURRENT_DOWNLOADS",
                     "UV_CONCURRENT_BUILDS", "UV_CONCURRENT_INSTALLS", "UV_HTTP_TIMEOUT", "UV_REQUEST_TIMEOUT",
                     "UV_HTTP_RETRIES", "UV_NATIVE_TLS", "UV_NO_WRAP", "UV_COLOR", "UV_QUIET", "UV_VERBOSE"})


def uv_visibility(environ: dict[str, str] | None = None) -> list[str]:
    """Every other UV_* variable (UV_OFFLINE, UV_INDEX_URL, UV_EXCLUDE_NEWER, UV_CONSTRAINT, ...), as
    NAME=value: uv reads them itself, so they change what a cell resolves and belong in its cache key."""
    env = os.environ if environ is None else environ
    return sorted(f"{k}={v}" for k, v in env.items() if k.startswith("UV_") and k not in _UV_HOW)


_NETWORK = re.compile(
    r"(failed to fetch|error sending request|connection (refused|reset)|dns error|timed out|"
    r"could not connect|network unreachable|tcp connect error|failed to download)",
    re.IGNORECASE,
)


def is_network_error(text: str) -> bool:
    return bool(_NETWORK.search(text))


def first_error_line(text: str) -> str:
    """uv's error and its explanation folded into one line, minus hint boilerplate."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("hint:", "help:", "warning:"))]
    if not keep:
        return "(no output)"
    head = re.sub(r"^(error|×)\s*:?\s*", "", keep[0], flags=re.IGNORECASE).rstrip(":")
    rest = " ".join(re.sub(r"^(cause|╰─▶)\s*:?\s*", "", ln) for ln in keep[1:12])
    return f"{head}: {rest}" if rest else head


@dataclass(frozen=True)
class Step:
    ok: bool
    seconds: float
    output: str
    returncode: int | None = 0  # negative: killed by that signal; None: timed out


CANNOT_RUN = "kto-compat: cannot run"  # how a tool that could not even start shows in a step's output


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> Step:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, errors="replace")
    except OSError as exc:  # uv deleted or made unexecutable mid-run, or no memory to fork: not the pair's
        kind = faults.of_oserror(exc)
        return Step(False, time.perf_counter() - start, f"{CANNOT_RUN} {cmd[0]}: {exc.strerror or exc}"
                    + (f" ({kind})" if kind != "harness" else ""), 127)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stderr or b"")
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        return Step(False, time.perf_counter() - start, redact(f"uv timed out after {timeout:.0f}s\n{text}"), None)
    # uv's output goes to logs and failure messages: no index password may ride along.
    return Step(proc.returncode == 0, time.perf_counter() - start, redact(proc.stderr + proc.stdout), proc.returncode)


# uv's own words, pinned to the tested uv range (pyproject: uv>=0.13,<0.14); tests/unit/test_uv_wording.py
# runs the real uv against a local index and fails if they change.
_NO_SOLUTION = "No solution found when resolving dependencies"
_MISSING = re.compile(r"\b([A-Za-z0-9_.-]+) was not found in the package registry")
_NO_VERSION = re.compile(r"there is no version of ([A-Za-z0-9_.-]+)==([^\s,]+)")


def fault(step: Step, pinned: dict[str, str], stopping: bool) -> str | None:
    """Why a failed uv step says nothing about the pair, or None when it is the pair's own answer.

    interrupt: the run is stopping, or uv died of a signal (a process-group Ctrl-C
    reaches uv too); network: uv could not reach the index; index: the index
    denied a release the planner saw on it (a mirror answering 404), or denied
    a package exists at all; harness: uv failed without the resolver's verdict.
    ``pinned`` maps the packages the harness pinned to the versions the index listed.
    """
    if stopping:
        return "interrupt"
    if step.output.startswith(CANNOT_RUN):
        return faults.exhausted(step.output) or "tool"
    # Offline, an unusable cache, no memory or disk: checked before the resolver's words (uv prints them
    # for an offline miss too) and before a signal (uv aborts with SIGABRT when an allocation fails).
    machine = faults.of_uv(step.output)
    if machine is not None:
        return machine
    if step.returncode is not None and step.returncode < 0:
        return "interrupt"
    if is_network_error(step.output):
        return "network"
    if _MISSING.search(step.output):
        return "index"
    for name, version in _NO_VERSION.findall(step.output):
        if pinned.get(name.lower()) == version:
            return "index"
    return None


def refused(step: Step) -> bool:
    """Did the resolver itself refuse (exit 1 with its explanation), as opposed to failing to run?"""
    return step.returncode == 1 and _NO_SOLUTION in step.output


# What uv says when a package of the lock itself cannot be installed here: the pair's own answer.
_UNINSTALLABLE = re.compile(
    r"Failed to (?:download and )?build|Failed to build `|doesn't have a source distribution or wheel for the "
    r"current platform|has no wheels? (?:with a matching|for the current)|is not supported on this platform"
    r"|" + _NO_SOLUTION, re.IGNORECASE)


def uninstallable(step: Step) -> bool:
    """Did an install fail because of a package of the lock (a failed build, no wheel for this platform),
    as opposed to the machine (a full disk, permissions) or uv itself? Only the first is a verdict."""
    return bool(_UNINSTALLABLE.search(step.output))


def torch_pin(cell: Cell, settings: Settings) -> str | None:
    """The torch a cell installs: its own torch axis, else matrix.toml's one pinned torch; None where the
    cell resolves as of its release and the config does not exempt torch from that (it is resolved then)."""
    own = cell.all_axes.get(axes.TORCH)
    if own is not None:
        return str(own)
    if cell.resolution == Resolution.AS_OF_RELEASE and axes.TORCH not in settings.as_of_release_exempt:
        return None
    return settings.torch


def pinned(cell: Cell, settings: Settings) -> dict[str, str]:
    """Every distribution the cell pins: its axes and torch (as resolved above, when pinned)."""
    torch = torch_pin(cell, settings)
    return {**axes.pins(cell), **({axes.TORCH: torch} if torch else {})}


def requirements(cell: Cell, settings: Settings) -> str:
    pins = pinned(cell, settings)
    lines = [f"{name}=={version}" for name, version in pins.items()]
    if axes.TORCH not in pins:
        lines.append(axes.TORCH)  # every cell imports torch; resolved as of the cell's release here
    return "\n".join(lines + list(settings.cell_requirements)) + "\n"


def resolution_args(cell: Cell, settings: Settings, workdir: Path) -> list[str]:
    """as-of-release: --exclude-newer at the pair's release; --force: uv overrides beat metadata."""
    args: list[str] = []
    if cell.resolution == Resolution.AS_OF_RELEASE:
        if not cell.released:
            raise EnvError(f"{cell.id}: the index gave no upload time, so as-of-release cannot be resolved")
        args += ["--exclude-newer", as_of(cell.released)]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for name in settings.as_of_release_exempt:
            args += ["--exclude-newer-package", f"{name}={now}"]
    if cell.forced:
        overrides = workdir / "overrides.txt"
        overrides.write_text("".join(f"{k}=={v}\n" for k, v in axes.pins(cell).items()))
        args += ["--override", str(overrides)]
    return args


def as_of(uploaded: str) -> str:
    """A day after the later upload: same-day patch releases of dependencies still count."""
    stamp = datetime.datetime.fromisoformat(uploaded.replace("Z", "+00:00"))
    return (stamp + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def declared_in_env(env: Path, dist: str = "trl", wants: str = "transformers") -> str | None:
    """What `dist`'s installed metadata requires of `wants` (read from disk, nothing imported)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for meta in env.glob(f"lib/python*/site-packages/{dist}-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            try:
                req = Requirement(line.split(":", 1)[1].strip())
            except InvalidRequirement:
                continue
            if req.name.lower() == wants and (req.marker is None or "extra" not in str(req.marker)):
                return str(req.specifier) or ""
    return None


_DEPENDS = re.compile(r"trl[^\s]* depends? on transformers([<>=!~][^\s]*?)(?:\s|,? and|$)")


def declared_in_message(message: str) -> str | None:
    """The requirement uv names when it refuses a pair ("trl==0.12.0 depends on transformers>=4.46.0")."""
    m = _DEPENDS.search(message)
    return m.group(1).rstrip(".,") if m else None


MARKER = ".compat-lock"  # in an environment: the digest of the pins it was synced from
PINS = ".compat-pins.txt"  # ... and those pins


def kept_pins(envs_root: Path, env_id: str) -> Path:
    """Where an environment's pins outlive it (``.compat/pins/``), for rebuilding it while resolving."""
    return envs_root.parent / "pins" / f"{env_id}.txt"


def pins_digest(lock_text: str) -> str:
    """The identity of a resolution: its pins, comments and blank lines aside."""
    pins = [ln for ln in lock_text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return hashlib.sha256("\n".join(pins).encode()).hexdigest()


@dataclass(frozen=True)
class Envs:
    """Where cell environments live and how uv is called."""

    root: Path
    settings: Settings

    def _uv(self, *args: str) -> list[str]:
        return [uv_bin(), *args]

    def _python(self) -> list[str]:
        return ["--python", self.settings.python, "--python-preference", "only-system"]

    def check_python(self) -> str:
        """The interpreter uv builds cells on (its path), or one line saying why there is none."""
        step = _run(self._uv("python", "find", self.settings.python, "--python-preference", "only-system"), 60)
        found = step.output.strip().splitlines()
        if step.ok and found:
            return found[-1]  # uv prints the path last, on stdout, after any warning on stderr
        why = fault(step, {}, False)
        if why in ("cache", "tool", "memory", "disk"):  # the machine, not the Python setting
            raise EnvError(f"uv cannot run here ({faults.KINDS[why]}): {first_error_line(step.output)}")
        raise EnvError(f"matrix.toml settings.python: Python {self.settings.python} is not available here: "
                       f"{first_error_line(step.output)}")

    # The uv command lines, built once: cells and `kto-compat bench` run the very same ones.
    def compile_cmd(self, req: Path, lock: Path) -> list[str]:
        return self._uv("pip", "compile", "--quiet", "--no-header", "--no-annotate", *self._python(),
                        *index_args(self.settings), str(req), "-o", str(lock))

    def venv_cmd(self, env: Path) -> list[str]:
        return self._uv("venv", "--quiet", "--clear", *self._python(), str(env))

    def sync_cmd(self, env: Path, lock: Path) -> list[str]:
        return self._uv("pip", "sync", "--quiet", "--python", str(env / "bin" / "python"), *index_args(self.settings),
                        str(lock))

    def resolve(self, cell: Cell, workdir: Path) -> tuple[Step, Path]:
        """`uv pip compile`: the resolver's verdict in seconds, without installing."""
        workdir.mkdir(parents=True, exist_ok=True)
        req, lock = workdir / "requirements.in", workdir / "requirements.txt"
        req.write_text(requirements(cell, self.settings))
        return _run(self.compile_cmd(req, lock) + resolution_args(cell, self.settings, workdir), 300), lock

    def ensure(self, cell: Cell, lock: Path) -> tuple[Step, Path, bool]:
        """A venv matching the lock; reused untouched while the lock is unchanged (cells of several
        trainers on one pair share it)."""
        env = self.root / cell.env_id
        pins = lock.read_text()
        digest = pins_digest(pins)
        marker = env / MARKER
        if marker.exists() and marker.read_text() == digest and (env / "bin" / "python").exists():
            os.utime(marker)  # least recently used environments are the first collected
            self._keep_pins(cell, pins, missing_only=True)  # an environment from before the pins were kept
            return Step(True, 0.0, "reused"), env, True
        start = time.perf_counter()
        made = _run(self.venv_cmd(env), 120)
        if not made.ok:
            return made, env, False
        synced = _run(self.sync_cmd(env, lock), 1200)
        if synced.ok:
            self._keep_pins(cell, pins)
            marker.write_text(digest)
        return Step(synced.ok, time.perf_counter() - start, synced.output, synced.returncode), env, False

    def _kept(self, cell: Cell) -> Path:
        return kept_pins(self.root, cell.env_id)

    def _keep_pins(self, cell: Cell, pins: str, missing_only: bool = False) -> None:
        """The pins beside the environment, and a copy that outlives its collection."""
        for copy in (self.root / cell.env_id / PINS, self._kept(cell)):
            if not (missing_only and copy.exists()):
                atomic_write(copy, pins)

    def known_pins(self, cell: Cell) -> Path | None:
        """The pins this cell's environment was last synced from: the environment's own while it
        exists, else the copy kept beside the environments once it was collected; None if it was never built."""
        env = self.root / cell.env_id
        try:
            if (env / MARKER).read_text() == pins_digest((env / PINS).read_text()) and (env / "bin" / "python").exists():
                return env / PINS
        except OSError:
            pass
        kept = self._kept(cell)
        return kept if kept.exists() and not env.exists() else None

    def collect(self, keep: int, busy: Path | None = None) -> list[str]:
        """Delete the least recently used environments beyond ``keep``, skipping any another run holds
        (its lock file is taken) and ``busy``. uv's cache keeps every file, so a collected environment
        costs a second of hard-linking if a later cell needs it again."""
        import fcntl

        used: dict[Path, float] = {}
        for p in (self.root.iterdir() if self.root.is_dir() else ()):
            try:  # another cell may be collecting at the same moment: a vanished environment is skipped
                used[p] = (p / ".compat-lock").stat().st_mtime
            except OSError:
                continue
        envs = sorted((p for p in used if p != busy), key=used.__getitem__, reverse=True)
        removed = []
        for env in envs[max(0, keep - (busy is not None)):]:
            fd = os.open(env.with_name(env.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                shutil.rmtree(env, ignore_errors=True)
                removed.append(env.name)
            finally:
                os.close(fd)
        return removed

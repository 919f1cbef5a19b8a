"""The pins a training project declares: requirements.txt (and pip-format locks), pyproject.toml,
uv.lock, poetry.lock, pdm.lock and pylock.toml (PEP 751).

`kto-compat check --requirements FILE` answers for the environment these pins
describe without installing anything. Each reader returns, per distribution,
the versions the file allows (several where a lock forks by platform); a file
it cannot read is one line naming the file (and the line or field), exit 2.
The reader is chosen by the file's exact name; anything else is pip's format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from compat.harness.config import ConfigError

MAX_BYTES = 8 * 2**20  # a lock of a large project is a few MB; anything bigger is not a pin file
MAX_INCLUDES = 16
_OPTION = re.compile(r"\s--?[a-z][a-z-]*(?:[= ]\S+)?")  # per-line options: --hash=..., --no-build-isolation
_LOCK_NAMES = ("uv.lock", "poetry.lock", "pdm.lock")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    allowed: tuple[SpecifierSet, ...]  # any of these (a lock that forks by platform has several)
    where: str  # "FILE:LINE" or "FILE: field", for messages

    @property
    def exacts(self) -> tuple[str, ...]:
        """The versions of ``==V`` alternatives; empty unless every alternative is one."""
        out = []
        for spec in self.allowed:
            parts = list(spec)
            if len(parts) != 1 or parts[0].operator not in ("==", "===") or "*" in parts[0].version:
                return ()
            out.append(parts[0].version)
        return tuple(out)

    @property
    def exact(self) -> str | None:
        """The one version the file allows, else None."""
        return self.exacts[0] if len(set(self.exacts)) == 1 else None

    def admits(self, version: Version) -> bool:
        return any(spec.contains(version, prereleases=True) for spec in self.allowed)

    def words(self) -> str:
        return " or ".join(str(s) or "(any version)" for s in self.allowed)


def _read(path: Path) -> str:
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: not a file")
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a requirements or lock file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": ""})  # evaluate fills in this interpreter's environment


def _url_version(req: Requirement) -> SpecifierSet:
    """``name @ URL``: the version a wheel's file name carries; anything else cannot be known offline."""
    try:
        _, version, _, _ = parse_wheel_filename(req.url.rsplit("/", 1)[-1].split("#", 1)[0])  # type: ignore[union-attr]
    except (InvalidWheelFilename, InvalidVersion):
        return SpecifierSet()
    return SpecifierSet(f"=={version}")


def _requirement(text: str, where: str) -> Requirement | None:
    """A PEP 508 requirement, or None where its marker excludes this Python and platform."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: not a requirement: {text.strip()[:120]!r} ({str(exc).splitlines()[0][:120]})") from None
    return req if _applies(req) else None


def _pin(req: Requirement, where: str) -> Pin:
    spec = _url_version(req) if req.url else req.specifier
    return Pin(canonicalize_name(req.name), (spec,), where)


def _lines(path: Path, depth: int = 0, at: str = "") -> Iterator[tuple[str, str]]:
    """(requirement text, "FILE:LINE") of a pip requirements file; -r/-c includes followed."""
    if depth > MAX_INCLUDES:
        raise ConfigError(f"{at}: more than {MAX_INCLUDES} nested -r includes")
    try:
        text = _read(path)
    except ConfigError as exc:
        raise ConfigError(f"{at}: {exc}" if at else str(exc)) from None
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()  # a comment starts at '#' after whitespace
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if not line:
            continue
        where = f"{path}:{start}"
        include = re.match(r"^(?:-r|-c|--requirement|--constraint)(?:\s*=?\s*)(\S+)$", line)
        if include:
            yield from _lines(path.parent / include[1], depth + 1, where)
            continue
        if line.startswith(("-", ".", "/")) or re.match(r"^\w+\+?\w*://", line):
            continue  # --index-url, -e/--editable, a local path or a bare URL: not a pin of a release
        yield _OPTION.sub("", " " + line).strip(), where


def _from_requirements(path: Path) -> list[Pin]:
    return [_pin(req, where) for text, where in _lines(path) if (req := _requirement(text, where)) is not None]


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None


def _from_pyproject(path: Path) -> list[Pin]:
    """project.dependencies first; an extra, a dependency group or Poetry's tables only add names the
    project's own dependencies do not have (alternative extras must not be merged into one pin)."""
    data = _toml(path)
    project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
    groups: list[tuple[str, Any]] = [("project.dependencies", project.get("dependencies", []))]
    for extra, reqs in sorted((project.get("optional-dependencies") or {}).items()):
        groups.append((f"project.optional-dependencies.{extra}", reqs))
    for group, reqs in sorted((data.get("dependency-groups") or {}).items()):
        groups.append((f"dependency-groups.{group}", [r for r in reqs if not isinstance(r, dict)]
                       if isinstance(reqs, list) else reqs))  # {include-group = ...} tables name other groups
    pins = []
    for field_name, reqs in groups:
        if not isinstance(reqs, list):
            raise ConfigError(f"{path}: {field_name}: expected a list of requirement strings")
        for i, text in enumerate(reqs):
            where = f"{path}: {field_name}[{i}]"
            if not isinstance(text, str):
                raise ConfigError(f"{where}: expected a requirement string, got {type(text).__name__}")
            req = _requirement(text, where)
            if req is not None:
                pins.append(_pin(req, where))
    poetry = data.get("tool", {}).get("poetry", {})
    tables = [("tool.poetry.dependencies", poetry.get("dependencies", {}))]
    tables += [(f"tool.poetry.group.{g}.dependencies", body.get("dependencies", {}))
               for g, body in sorted((poetry.get("group") or {}).items()) if isinstance(body, dict)]
    for field_name, table in tables:
        for name, value in sorted(table.items()) if isinstance(table, dict) else ():
            if name.lower() == "python":
                continue
            where = f"{path}: {field_name}.{name}"
            values = value if isinstance(value, list) else [value]
            versions = [v.get("version") if isinstance(v, dict) else v for v in values]
            allowed = tuple(s for v in versions if isinstance(v, str) for s in poetry_constraint(v, where))
            if allowed:
                pins.append(Pin(canonicalize_name(name), allowed, where))
    first: dict[str, Pin] = {}
    for pin in pins:
        first.setdefault(pin.name, pin)
    return list(first.values())


def poetry_constraint(text: str, where: str) -> tuple[SpecifierSet, ...]:
    """Poetry's constraint syntax as PEP 440 alternatives: ``^``/``~`` ranges, bare and ``=`` versions,
    wildcards, space- or comma-separated bounds, and ``||``."""
    out = []
    for part in text.split("||"):
        clauses = [c for c in re.split(r"[,\s]+(?=[<>=!~^\d*])", part.strip()) if c]
        specs = []
        for clause in clauses or ["*"]:
            specs.append(_poetry_clause(clause.replace(" ", ""), where, text))
        try:
            out.append(SpecifierSet(",".join(s for s in specs if s)))
        except InvalidSpecifier:
            raise ConfigError(f"{where}: not a version constraint: {text[:80]!r}") from None
    return tuple(out)


def _poetry_clause(clause: str, where: str, text: str) -> str:
    try:
        if clause in ("*", ""):
            return ""
        if clause[0] in "^~" and not clause.startswith("~="):
            v = Version(clause[1:])
            release = list(v.release)
            if clause[0] == "~":
                upper = f"{release[0]}.{(release + [0])[1] + 1}" if len(release) > 1 else f"{release[0] + 1}"
            else:
                i = next((k for k, p in enumerate(release) if p), len(release) - 1)
                upper = ".".join(str(p) for p in release[:i] + [release[i] + 1])
            return f">={v},<{upper}"
        if clause[0] == "=" and not clause.startswith("=="):
            clause = clause[1:]
        if clause[0].isdigit():
            if "*" not in clause:
                Version(clause)
            return f"=={clause}"
        return clause
    except (InvalidVersion, IndexError):
        raise ConfigError(f"{where}: not a version constraint: {text[:80]!r}") from None


def _from_lock(path: Path, key: str = "package") -> list[Pin]:
    """One entry per distribution and version; a project whose own version is dynamic has none (skipped)."""
    packages = _toml(path).get(key, [])
    if not isinstance(packages, list):
        raise ConfigError(f"{path}: {key}: expected an array of tables")
    versions: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for i, pkg in enumerate(packages):
        name, version = (pkg.get("name"), pkg.get("version")) if isinstance(pkg, dict) else (None, None)
        if not isinstance(name, str):
            raise ConfigError(f"{path}: {key}[{i}]: expected a string name")
        if version is None:
            continue
        if not isinstance(version, str):
            raise ConfigError(f"{path}: {key}[{i}]: {name}: expected a string version")
        try:
            Version(version)
        except InvalidVersion:
            raise ConfigError(f"{path}: {key}[{i}]: {name} {version!r} is not a version") from None
        canon = canonicalize_name(name)
        versions.setdefault(canon, []).append(version)
        where.setdefault(canon, f"{path}: {key}[{i}]")
    return [Pin(n, tuple(SpecifierSet(f"=={v}") for v in dict.fromkeys(vs)), where[n]) for n, vs in versions.items()]


def read(path: Path) -> dict[str, Pin]:
    """The pins of one file, by canonical name. In a pip file a name given twice (markers select
    one where they apply) keeps every constraint that applies here."""
    name = path.name
    if name in _LOCK_NAMES:
        pins = _from_lock(path)
    elif re.fullmatch(r"pylock(\.[^.]+)?\.toml", name):
        pins = _from_lock(path, "packages")
    elif name == "pyproject.toml":
        pins = _from_pyproject(path)
    else:
        pins = _from_requirements(path)
    out: dict[str, Pin] = {}
    for pin in pins:
        if pin.name in out:
            old = out[pin.name]
            pin = Pin(pin.name, tuple(a & b for a in old.allowed for b in pin.allowed), old.where)
        out[pin.name] = pin
    return out

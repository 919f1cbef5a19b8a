"""The pins a training project declares: requirements.txt, pyproject.toml, uv.lock or poetry.lock.

`kto-compat check --requirements FILE` answers for the environment these pins
describe without installing anything. Each reader returns one requirement per
distribution; a file it cannot read is one line naming the file (and the line
or field), exit 2.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from compat.harness.config import ConfigError

MAX_BYTES = 8 * 2**20  # a lock of a large project is a few MB; anything bigger is not a pin file
MAX_INCLUDES = 16


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    specifier: SpecifierSet
    where: str  # "FILE:LINE" or "FILE: field", for messages

    @property
    def exact(self) -> str | None:
        """The one version an ``==V`` (or ``===V``) pin allows, else None."""
        specs = list(self.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return specs[0].version
        return None


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


def _requirement(text: str, where: str) -> Requirement | None:
    """A PEP 508 requirement, or None where its marker excludes this Python and platform."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: not a requirement: {text.strip()[:120]!r} ({str(exc).splitlines()[0][:120]})") from None
    if req.marker is not None and not req.marker.evaluate({**default_environment(), "extra": ""}):
        return None
    return req


def _lines(path: Path, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(requirement text, "FILE:LINE") of a pip requirements file; -r/-c includes followed."""
    if depth > MAX_INCLUDES:
        raise ConfigError(f"{path}: more than {MAX_INCLUDES} nested -r includes")
    pending, start = "", 0
    for number, raw in enumerate(_read(path).splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if not line:
            continue
        where = f"{path}:{start}"
        if line.startswith(("-r ", "-c ", "--requirement", "--constraint")):
            target = line.split(None, 1)[1] if " " in line else line.split("=", 1)[-1]
            yield from _lines(path.parent / target.strip(), depth + 1)
            continue
        if line.startswith("-"):  # --index-url, -e ., --hash on its own line: not a pin
            continue
        yield line.split(" --hash", 1)[0].split(";", 1)[0] if "--hash" in line else line, where


def _from_requirements(path: Path) -> list[Pin]:
    pins = []
    for text, where in _lines(path):
        req = _requirement(text, where)
        if req is not None:
            pins.append(Pin(canonicalize_name(req.name), req.specifier, where))
    return pins


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None


def _from_pyproject(path: Path) -> list[Pin]:
    data = _toml(path)
    project = data.get("project", {})
    groups: list[tuple[str, object]] = [("project.dependencies", project.get("dependencies", []))]
    for extra, reqs in sorted((project.get("optional-dependencies") or {}).items()):
        groups.append((f"project.optional-dependencies.{extra}", reqs))
    for group, reqs in sorted((data.get("dependency-groups") or {}).items()):
        groups.append((f"dependency-groups.{group}", [r for r in reqs if isinstance(r, str)] if isinstance(reqs, list) else reqs))
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
                pins.append(Pin(canonicalize_name(req.name), req.specifier, where))
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {})
    for name, value in sorted(poetry.items()) if isinstance(poetry, dict) else ():
        version = value.get("version") if isinstance(value, dict) else value
        if name.lower() == "python" or not isinstance(version, str):
            continue
        where = f"{path}: tool.poetry.dependencies.{name}"
        pins.append(Pin(canonicalize_name(name), _poetry_spec(version, where), where))
    return pins


def _poetry_spec(text: str, where: str) -> SpecifierSet:
    """Poetry's constraint syntax: a bare version is exact; ``^``/``~`` ranges become PEP 440 ranges."""
    text = text.strip()
    try:
        if text in ("*", ""):
            return SpecifierSet()
        if text[0] in "^~" and not text.startswith("~="):
            v = Version(text[1:])
            parts = list(v.release) + [0, 0]
            if text[0] == "~":
                upper = f"{parts[0]}.{parts[1] + 1}" if len(v.release) > 1 else f"{parts[0] + 1}"
            else:
                i = next((k for k, p in enumerate(v.release) if p), len(v.release) - 1)
                upper = ".".join(str(p) for p in list(v.release[:i]) + [v.release[i] + 1])
            return SpecifierSet(f">={v},<{upper}")
        if text[0].isdigit():
            Version(text)
            return SpecifierSet(f"=={text}")
        return SpecifierSet(text)
    except (InvalidVersion, ValueError, IndexError):
        raise ConfigError(f"{where}: not a version constraint: {text[:80]!r}") from None


def _from_lock(path: Path) -> list[Pin]:
    """uv.lock and poetry.lock: one [[package]] per distribution, each at its exact version."""
    packages = _toml(path).get("package", [])
    if not isinstance(packages, list):
        raise ConfigError(f"{path}: package: expected an array of tables")
    pins = []
    for i, pkg in enumerate(packages):
        where = f"{path}: package[{i}]"
        name, version = (pkg.get("name"), pkg.get("version")) if isinstance(pkg, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(version, str):
            raise ConfigError(f"{where}: expected string name and version")
        try:
            Version(version)
        except InvalidVersion:
            raise ConfigError(f"{where}: {name} {version!r} is not a version") from None
        pins.append(Pin(canonicalize_name(name), SpecifierSet(f"=={version}"), where))
    return pins


def read(path: Path) -> dict[str, Pin]:
    """The pins of one file, by canonical name; a name pinned twice keeps both constraints."""
    name = path.name
    if name in ("uv.lock", "poetry.lock") or name.endswith(".lock"):
        pins = _from_lock(path)
    elif name == "pyproject.toml" or name.endswith(".toml"):
        pins = _from_pyproject(path)
    else:
        pins = _from_requirements(path)
    out: dict[str, Pin] = {}
    for pin in pins:
        if pin.name in out:
            pin = Pin(pin.name, out[pin.name].specifier & pin.specifier, out[pin.name].where)
        out[pin.name] = pin
    return out

"""matrix.toml -> frozen config objects, with errors that name the file and field.

Host side: stdlib + packaging only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

PICKS = ("latest", "earliest", "latest-per-minor", "all")
RESOLUTIONS = ("latest", "as-of-release")


class ConfigError(ValueError):
    """Bad matrix.toml; the message names the file and the field."""


@dataclass(frozen=True)
class Selector:
    """One entry of an axis: an exact version, or a specifier plus a pick rule."""

    spec: SpecifierSet
    pick: str = "latest"
    exact: Version | None = None
    text: str = ""

    @classmethod
    def parse(cls, raw: Any, where: str, default_pick: str = "latest") -> "Selector":
        if isinstance(raw, dict):
            unknown = set(raw) - {"spec", "pick"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected 'spec' and 'pick'")
            text, pick = raw.get("spec", ""), raw.get("pick", default_pick)
        elif isinstance(raw, str):
            text, pick = raw, default_pick
        else:
            raise ConfigError(f"{where}: expected a version string or {{spec, pick}} table, got {raw!r}")
        if pick not in PICKS:
            raise ConfigError(f"{where}: unknown pick {pick!r}; one of {', '.join(PICKS)}")
        text = text.strip()
        if text == "latest":
            return cls(SpecifierSet(), pick, None, text)
        if text and text[0].isdigit() and "*" not in text:
            try:
                version = Version(text)
            except InvalidVersion:
                raise ConfigError(f"{where}: invalid version {text!r}") from None
            return cls(SpecifierSet(f"=={version}"), "latest", version, text)
        if text and text[0].isdigit():
            text = f"=={text}"  # "0.11.*" is shorthand for "==0.11.*"
        try:
            return cls(SpecifierSet(text), pick, None, text)
        except InvalidSpecifier:
            raise ConfigError(f"{where}: invalid version specifier {text!r}") from None


@dataclass(frozen=True)
class Grid:
    """A cross product of TRL and transformers selectors; a profile is a union of grids."""

    trl: tuple[Selector, ...]
    transformers: tuple[Selector, ...]
    resolutions: tuple[str, ...] | None = None  # None: settings.resolution


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    grids: tuple[Grid, ...]


@dataclass(frozen=True)
class Settings:
    python: str = "3.11"
    torch: str = "2.13.0"
    torch_index_url: str | None = None
    resolutions: tuple[str, ...] = ("latest",)
    cell_timeout: float = 900.0
    cell_requirements: tuple[str, ...] = ("pytest==8.4.2",)
    # as-of-release resolves everything as of the pair's release date except
    # these: the one torch every cell shares, its own requirements, and the
    # in-cell test runner.
    as_of_release_exempt: tuple[str, ...] = (
        "torch", "setuptools", "sympy", "mpmath", "networkx", "jinja2", "markupsafe",
        "fsspec", "filelock", "typing-extensions", "pytest",
    )


@dataclass(frozen=True)
class MatrixConfig:
    path: Path
    settings: Settings
    profiles: dict[str, Profile] = field(hash=False)

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ConfigError(
                f"{self.path}: unknown profile {name!r}; defined: {', '.join(sorted(self.profiles))}"
            ) from None


_TOP = {"settings", "torch", "profiles"}
_SETTINGS = {"python", "resolution", "cell_timeout", "cell_requirements", "as_of_release_exempt"}
_TORCH = {"version", "index_url"}
_PROFILE = {"description", "grid", "pick"}
_GRID = {"trl", "transformers", "pick", "resolution"}


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _axis(raw: Any, where: str, pick: str) -> tuple[Selector, ...]:
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: axis is empty; list at least one version or specifier")
    return tuple(Selector.parse(item, f"{where}[{i}]", pick) for i, item in enumerate(raw))


def _resolutions(raw: Any, where: str) -> tuple[str, ...]:
    modes = (raw,) if isinstance(raw, str) else tuple(raw) if isinstance(raw, list) else ()
    if not modes:
        raise ConfigError(f"{where}: expected a mode or a list of modes ({', '.join(RESOLUTIONS)})")
    for r in modes:
        if r not in RESOLUTIONS:
            raise ConfigError(f"{where}: unknown mode {r!r}; one of {', '.join(RESOLUTIONS)}")
    return modes


def parse(data: dict[str, Any], path: Path) -> MatrixConfig:
    _check_keys(data, _TOP, str(path))
    s = data.get("settings", {})
    _check_keys(s, _SETTINGS, f"{path}: [settings]")
    t = data.get("torch", {})
    _check_keys(t, _TORCH, f"{path}: [torch]")
    res = _resolutions(s.get("resolution", ["latest"]), f"{path}: settings.resolution")
    torch = str(t.get("version", "2.13.0"))
    try:
        Version(torch)
    except InvalidVersion:
        raise ConfigError(f"{path}: torch.version: invalid version {torch!r}") from None
    settings = Settings(
        python=str(s.get("python", "3.11")),
        torch=torch,
        torch_index_url=t.get("index_url"),
        resolutions=res,
        cell_timeout=float(s.get("cell_timeout", 900)),
        cell_requirements=tuple(s.get("cell_requirements", Settings.cell_requirements)),
        as_of_release_exempt=tuple(s.get("as_of_release_exempt", Settings.as_of_release_exempt)),
    )
    profiles: dict[str, Profile] = {}
    raw_profiles = data.get("profiles", {})
    if not raw_profiles:
        raise ConfigError(f"{path}: no [profiles.*] defined")
    for name, body in raw_profiles.items():
        where = f"{path}: profiles.{name}"
        _check_keys(body, _PROFILE, where)
        pick = body.get("pick", "latest")
        grids_raw = body.get("grid", [])
        if not grids_raw:
            raise ConfigError(f"{where}: no [[profiles.{name}.grid]] entries")
        grids = []
        for i, g in enumerate(grids_raw):
            gw = f"{where}.grid[{i}]"
            _check_keys(g, _GRID, gw)
            gpick = g.get("pick", pick)
            for axis in ("trl", "transformers"):
                if axis not in g:
                    raise ConfigError(f"{gw}: missing axis {axis!r}")
            gres = _resolutions(g["resolution"], f"{gw}.resolution") if "resolution" in g else None
            grids.append(Grid(_axis(g["trl"], f"{gw}.trl", gpick), _axis(g["transformers"], f"{gw}.transformers", gpick), gres))
        profiles[name] = Profile(name, str(body.get("description", "")), tuple(grids))
    return MatrixConfig(path, settings, profiles)


def load(path: Path) -> MatrixConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    return parse(data, path)

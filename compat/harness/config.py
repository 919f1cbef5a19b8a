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

from compat.contract import DEFAULT_TRAINER, CompatError, Resolution
from compat.harness import axes

PICKS = ("latest", "earliest", "latest-per-minor", "all")
RESOLUTIONS: tuple[Resolution, ...] = tuple(Resolution)


class ConfigError(CompatError, ValueError):
    """Bad input (matrix.toml, a flag, a results dir); the message names the file, field or value."""


@dataclass(frozen=True)
class Selector:
    """One entry of an axis: an exact version, or a specifier plus a pick rule."""

    spec: SpecifierSet
    pick: str = "latest"
    exact: Version | None = None
    text: str = ""

    @classmethod
    def parse(cls, raw: Any, where: str, default_pick: str = "latest") -> Selector:
        if isinstance(raw, dict):
            unknown = set(raw) - {"spec", "pick"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected 'spec' and 'pick'")
            text, pick = raw.get("spec", ""), raw.get("pick", default_pick)
        elif isinstance(raw, str):
            text, pick = raw, default_pick
        else:
            raise ConfigError(f"{where}: expected a version string or {{spec, pick}} table, got {raw!r}")
        if not isinstance(text, str):
            raise ConfigError(f"{where}: spec must be a quoted version or specifier, got {text!r}"[:200])
        if not isinstance(pick, str) or pick not in PICKS:
            raise ConfigError(f"{where}: unknown pick {pick!r}; one of {', '.join(PICKS)}"[:200])
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
    """A cross product of TRL, transformers and any further axes' selectors; a profile is a union of grids."""

    trl: tuple[Selector, ...]
    transformers: tuple[Selector, ...]
    resolutions: tuple[str, ...] | None = None  # None: settings.resolution
    trainers: tuple[str, ...] | None = None  # None: settings.trainers
    # Further axes (canonical distribution name, selectors), in the grid's order: datasets, torch, ...
    axes: tuple[tuple[str, tuple[Selector, ...]], ...] = ()

    @property
    def all_axes(self) -> tuple[tuple[str, tuple[Selector, ...]], ...]:
        return (("trl", self.trl), ("transformers", self.transformers), *self.axes)


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
    resolutions: tuple[str, ...] = (Resolution.LATEST,)
    trainers: tuple[str, ...] = (DEFAULT_TRAINER,)
    cell_timeout: float = 900.0
    keep_environments: int = 64  # least recently used cell environments beyond this are deleted
    bytecode_gib: float = 4.0  # the shared bytecode store is pruned to this size after each run
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
_SETTINGS = {"python", "resolution", "trainers", "cell_timeout", "keep_environments", "bytecode_gib",
             "cell_requirements", "as_of_release_exempt"}
_TORCH = {"version", "index_url"}
_PROFILE = {"description", "grid", "pick", "from", "trainers", "resolution"}
_GRID = {"pick", "resolution", "trainers"}  # a grid's own options; every other key is an axis


def _check_keys(table: Any, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__} {table!r}"[:200])
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _axis(raw: Any, where: str, pick: str) -> tuple[Selector, ...]:
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: axis is empty; list at least one version or specifier")
    for i, item in enumerate(raw):
        text = item.get("spec", "") if isinstance(item, dict) else item
        if isinstance(text, str) and not text.strip():
            raise ConfigError(f"{where}[{i}]: empty version; write \"latest\" for the newest release")
    return tuple(Selector.parse(item, f"{where}[{i}]", pick) for i, item in enumerate(raw))


def _named_axes(table: dict[str, Any], options: set[str], where: str, pick: str) -> dict[str, tuple[Selector, ...]]:
    """A table's axes by canonical name: every key that is not one of its ``options``, each a PyPI
    distribution with the same version syntax and pick rules as trl and transformers."""
    out: dict[str, tuple[Selector, ...]] = {}
    for key, raw in table.items():
        if key in options:
            continue
        name = axes.canonical(key)
        if name is None:
            raise ConfigError(f"{where}: {key!r} is neither an option ({', '.join(sorted(options))}) "
                              "nor a distribution name for an axis"[:200])
        if name in out:
            raise ConfigError(f"{where}: axis {key!r} is named twice (as {name!r})")
        out[name] = _axis(raw, f"{where}.{key}", pick)
    return out


def _grid_axes(g: dict[str, Any], where: str, pick: str, added: dict[str, tuple[Selector, ...]]) -> dict[str, tuple[Selector, ...]]:
    """A grid's axes: trl and transformers (both required), its further axes, then the profile's ``added``."""
    out = _named_axes(g, _GRID, where, pick)
    for name in axes.DEFAULT:
        if name not in out:
            raise ConfigError(f"{where}: missing axis {name!r}")
    for name, sels in added.items():
        if name in out:
            raise ConfigError(f"{where}: axis {name!r} is set both here and by the profile")
        out[name] = sels
    return out


def _strings(raw: Any, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of strings; a bare string is refused (iterating it would give its characters)."""
    if raw is None:
        return default
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise ConfigError(f"{where}: expected a list of non-empty strings, got {raw!r}"[:200])
    return tuple(raw)


def _trainers(raw: Any, where: str) -> tuple[str, ...]:
    from compat import trainers

    names = _strings([raw] if isinstance(raw, str) else raw, where, ())
    if not names:
        raise ConfigError(f"{where}: list at least one trainer ({', '.join(trainers.names())})")
    for name in names:
        if name not in trainers.names():
            raise ConfigError(f"{where}: unknown trainer {name!r}; one of {', '.join(trainers.names())}")
    return names


def _number(raw: Any, where: str, default: float, minimum: float, maximum: float = 1e7) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not raw == raw or raw in (float("inf"), float("-inf")):
        raise ConfigError(f"{where}: expected a number of seconds, got {raw!r}")
    if raw < minimum:
        raise ConfigError(f"{where}: {raw} is below the minimum {minimum:g}")
    if raw > maximum:  # validated here, not discovered after every cell ran (int(inf) at the end)
        raise ConfigError(f"{where}: {raw} is above the maximum {maximum:g}")
    return float(raw)


def _resolutions(raw: Any, where: str) -> tuple[str, ...]:
    modes = (raw,) if isinstance(raw, str) else tuple(raw) if isinstance(raw, list) else ()
    if not modes:
        raise ConfigError(f"{where}: expected a mode or a list of modes ({', '.join(RESOLUTIONS)})")
    for r in modes:
        if r not in RESOLUTIONS:
            raise ConfigError(f"{where}: unknown mode {r!r}; one of {', '.join(RESOLUTIONS)}")
    return modes


def _text(raw: Any, where: str, default: str) -> str:
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: expected a quoted string, got {raw!r} (write it in quotes: \"{raw}\")")
    return raw


def parse(data: dict[str, Any], path: Path) -> MatrixConfig:
    _check_keys(data, _TOP, str(path))
    s = data.get("settings", {})
    _check_keys(s, _SETTINGS, f"{path}: [settings]")
    t = data.get("torch", {})
    _check_keys(t, _TORCH, f"{path}: [torch]")
    res = _resolutions(s.get("resolution", [Resolution.LATEST]), f"{path}: settings.resolution")
    torch = _text(t.get("version"), f"{path}: torch.version", "2.13.0")
    try:
        Version(torch)
    except InvalidVersion:
        raise ConfigError(f"{path}: torch.version: invalid version {torch!r}") from None
    python = _text(s.get("python"), f"{path}: settings.python", "3.11")
    settings = Settings(
        python=python,
        torch=torch,
        torch_index_url=_text(t.get("index_url"), f"{path}: torch.index_url", "") or None,
        resolutions=res,
        trainers=_trainers(s.get("trainers", [DEFAULT_TRAINER]), f"{path}: settings.trainers"),
        cell_timeout=_number(s.get("cell_timeout"), f"{path}: settings.cell_timeout", 900.0, 1.0),
        keep_environments=int(_number(s.get("keep_environments"), f"{path}: settings.keep_environments", 64, 1)),
        bytecode_gib=_number(s.get("bytecode_gib"), f"{path}: settings.bytecode_gib", 4.0, 0.0),
        cell_requirements=_strings(s.get("cell_requirements"), f"{path}: settings.cell_requirements",
                                   Settings.cell_requirements),
        as_of_release_exempt=_strings(s.get("as_of_release_exempt"), f"{path}: settings.as_of_release_exempt",
                                      Settings.as_of_release_exempt),
    )
    raw_profiles = data.get("profiles", {})
    if not isinstance(raw_profiles, dict) or not raw_profiles:
        raise ConfigError(f"{path}: no [profiles.*] defined")
    profiles: dict[str, Profile] = {}
    for name, body in raw_profiles.items():
        where = f"{path}: profiles.{name}"
        _check_keys(body, set(body) | _PROFILE if "from" in body else _PROFILE, where)
        pick = body.get("pick", "latest")
        # A profile made from another may add further axes to each of its grids (datasets on the default pairs).
        added = _named_axes(body, _PROFILE, where, pick) if "from" in body else {}
        for axis in axes.DEFAULT:
            if axis in added:
                raise ConfigError(f"{where}: {axis!r} is an axis of each grid; a profile with 'from' adds further axes only")
        trainers = _trainers(body["trainers"], f"{where}.trainers") if "trainers" in body else None
        resolutions = _resolutions(body["resolution"], f"{where}.resolution") if "resolution" in body else None
        if "from" in body:
            # Another profile's pairs, e.g. the dpo profile measures DPOTrainer on the default pairs.
            base = body["from"]
            if not isinstance(base, str) or base not in raw_profiles or base == name or "from" in raw_profiles.get(base, {}):
                raise ConfigError(f"{where}.from: {base!r} is not another profile defined without 'from'")
            _check_keys(raw_profiles[base], _PROFILE, f"{path}: profiles.{base}")
            grids_raw = raw_profiles[base].get("grid", [])
        else:
            grids_raw = body.get("grid", [])
        if not isinstance(grids_raw, list) or not grids_raw:
            raise ConfigError(f"{where}: no [[profiles.{name}.grid]] entries")
        grids = []
        for i, g in enumerate(grids_raw):
            gw = f"{where}.grid[{i}]"
            _check_keys(g, set(g) | _GRID, gw)  # a table, whatever its keys
            gpick = g.get("pick", pick)
            named = _grid_axes(g, gw, gpick, added)
            gres = resolutions or (_resolutions(g["resolution"], f"{gw}.resolution") if "resolution" in g else None)
            gtrainers = trainers or (_trainers(g["trainers"], f"{gw}.trainers") if "trainers" in g else None)
            grids.append(Grid(named.pop("trl"), named.pop("transformers"), gres, gtrainers, tuple(named.items())))
        profiles[name] = Profile(name, _text(body.get("description"), f"{where}.description", ""), tuple(grids))
    return MatrixConfig(path, settings, profiles)


def state_dir(config_path: Path) -> Path:
    """Where a matrix file's machine state lives (environments, cached results, the index listing
    cache, shared bytecode): `.compat/` beside it, never committed."""
    return config_path.resolve().parent / ".compat"


def load(path: Path) -> MatrixConfig:
    import stat

    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever, a device never end
            raise ConfigError(f"{path}: not a regular file")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from None
    except FileNotFoundError:
        # matrix, list, releases, shards, bisect and bench plan from a matrix file: a checkout has one.
        raise ConfigError(f"{path}: no such file; run this command in a kto-compat checkout (beside its "
                          "matrix.toml) or pass --config FILE") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    return parse(data, path)

"""The result contract's types: statuses, stages, keyword states, errors, and the typed cell.

Field names are the contract in DESIGN.md; other tools read them, so they only ever grow.
Stdlib + packaging + the probe registry only. Versions are parsed once, here, into
``Version``; statuses, stages and keyword states are ``StrEnum``s, so they compare and
serialise as the plain strings of the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from compat import probes

KEYWORDS: tuple[str, ...] = ("processing_class", "tokenizer")
# The trainer a cell measures unless it names another: published cells leave it out (DESIGN.md).
DEFAULT_TRAINER = "kto"
MIN_STEPS = 3  # "at least 3 BF16 optimizer steps"


class Status(StrEnum):
    COMPATIBLE = "compatible"
    INCOMPATIBLE = "incompatible"
    UNRESOLVABLE = "unresolvable"
    ERROR = "error"
    FLAKY = "flaky"


class Stage(StrEnum):
    """Pipeline order: a cell's failure is charged to the first stage that failed."""

    RESOLVE = "resolve"
    INSTALL = "install"
    IMPORT = "import"
    CONSTRUCT = "construct"
    FORMAT = "format"
    TRAIN = "train"
    ADAPTER = "adapter"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


PIPELINE: tuple[Stage, ...] = (Stage.RESOLVE, Stage.INSTALL, Stage.IMPORT, Stage.CONSTRUCT, Stage.FORMAT, Stage.TRAIN,
                               Stage.ADAPTER)


class KeywordState(StrEnum):
    ACCEPTED = "accepted"
    DEPRECATED = "deprecated"
    REJECTED = "rejected"
    UNTESTED = "untested"


BUILT = (KeywordState.ACCEPTED, KeywordState.DEPRECATED)


class Resolution(StrEnum):
    """How a cell's environment was resolved: today's index, or the index as of the pair's release."""

    LATEST = "latest"
    AS_OF_RELEASE = "as-of-release"


class DriftKind(StrEnum):
    """Why a dependency that moved under the pair broke it (see Drift.describe)."""

    UNDECLARED_DEPENDENCY = "undeclared-dependency"
    MOVED_API = "moved-api"
    THIRD_PARTY = "third-party"
    UNKNOWN = "unknown"


# The two axes every cell has, in order; a grid may add further ones (CellResult.axes).
AXES: tuple[str, ...] = ("trl", "transformers")


class CompatError(Exception):
    """Every error kto-compat reports as one line (bad input, a locked results dir, no uv):
    the CLI prints it and exits 2; nothing already measured is touched."""


class ContractError(CompatError, ValueError):
    """A document or cell that does not follow the contract; the message says where."""


def parse_version(text: object, what: str) -> Version:
    if isinstance(text, Version):
        return text
    try:
        return Version(str(text))
    except InvalidVersion:
        raise ContractError(f"{what}: {str(text)[:80]!r} is not a PEP 440 version") from None


def cell_id(trl: object, transformers: object, resolution: str = Resolution.LATEST, forced: bool = False,
            trainer: str = DEFAULT_TRAINER, axes: Mapping[str, object] | None = None) -> str:
    """The one name a cell has everywhere: file names, nox sessions, reports. Built from parsed
    versions only, so it can never hold a path separator. Further axes follow the pair in grid order."""
    suffix = "" if resolution == Resolution.LATEST else f"-{resolution}"
    further = "".join(f"-{name}{version}" for name, version in (axes or {}).items())
    return (f"trl{trl}-tf{transformers}{further}{suffix}{'-forced' if forced else ''}"
            f"{'' if trainer == DEFAULT_TRAINER else '-' + trainer}")


@dataclass(frozen=True)
class Drift:
    """A failure caused by a third-party package that moved under the pair."""

    kind: str  # a DriftKind
    package: str | None = None
    importer: str | None = None

    def describe(self) -> str:
        if self.kind == "undeclared-dependency":
            return (f"{self.importer or 'the import'} needs {self.package}, which no declared requirement brings "
                    f"any more (an undeclared dependency)")
        if self.kind == "moved-api":
            return (f"{self.importer or 'a dependency'} imports a name {self.package or 'a third-party package'} "
                    "no longer has (a third-party API that moved)")
        if self.kind == "third-party":
            return (f"the import failed inside {self.package or 'a third-party package'}, not in trl or "
                    "transformers: a dependency moved under the pair")
        return "a third-party dependency moved under the pair"


@dataclass(frozen=True)
class Failure:
    stage: Stage
    message: str
    raised_by: str | None = None
    drift: Drift | None = None
    fault: str | None = None  # status error only: interrupt | signal | index | network | harness | ...
    platform: str | None = None  # measured: the failure moves when a platform fact changes (why, in words)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))
        if self.drift is True:
            object.__setattr__(self, "drift", Drift("unknown"))
        elif self.drift is False:
            object.__setattr__(self, "drift", None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        drift = data.get("drift")
        if drift is True:
            parsed = Drift("unknown")
        elif isinstance(drift, Mapping):
            parsed = Drift(str(drift["kind"]), drift.get("package"), drift.get("importer"))
        else:
            parsed = None
        return cls(Stage(data["stage"]), str(data["message"]), data.get("raised_by"), parsed, data.get("fault"),
                   data.get("platform"))


@dataclass(frozen=True)
class TestFailure:
    id: str
    message: str
    outcome: str = "failed"  # failed | error


@dataclass(frozen=True)
class Tests:
    """The in-cell pytest suite's outcome: a skipped test is never counted as passed."""

    passed: int = 0
    skipped: int = 0
    failed: tuple[TestFailure, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Tests | None:
        if data is None:
            return None
        return cls(int(data.get("passed", 0)), int(data.get("skipped", 0)),
                   tuple(TestFailure(f["id"], f["message"], f.get("outcome", "failed")) for f in data.get("failed", ())))


@dataclass(frozen=True)
class CellResult:
    trl: Version
    transformers: Version
    resolution: str
    status: Status
    trainer: str = DEFAULT_TRAINER
    environment: dict[str, str] = field(default_factory=dict, hash=False)
    failure: Failure | None = None
    keyword: dict[str, str] = field(default_factory=lambda: dict.fromkeys(KEYWORDS, "untested"), hash=False)
    keyword_raised_by: dict[str, str | None] = field(default_factory=dict, hash=False)
    import_path: str | None = None
    format_mode: str | None = None  # conversational: the trainer templates message lists; text: pre-render
    probes: dict[str, Any] = field(default_factory=dict, hash=False)  # registry probes without a contract field
    formatter: dict[str, dict[str, str]] = field(default_factory=dict, hash=False)
    training: dict[str, Any] | None = field(default=None, hash=False)
    adapter: str | None = None  # pass | fail
    adapter_outcome: str | None = None  # trained | refused
    adapter_detail: dict[str, str] = field(default_factory=dict, hash=False)
    tests: Tests | None = None
    flaky: tuple[dict[str, Any], ...] = ()  # status flaky: both outcomes
    warnings: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict, hash=False)
    peak_rss_bytes: int | None = None
    cache_key: str = ""
    log: str | None = None
    forced: bool = False  # run with uv overrides although TRL's metadata forbids the pair
    yanked: tuple[str, ...] = ()  # which of trl/transformers is a yanked release
    declared: str | None = None  # what TRL's metadata requires of transformers
    released: str = ""  # the later upload time of the two releases
    suite: str = ""  # hash of the cell suite it ran under
    axes: dict[str, str] = field(default_factory=dict, hash=False)  # further axes: distribution -> version
    lock: str | None = None  # id of the complete pinned set it ran with (locks/<id>.txt); None: never installed

    def __post_init__(self) -> None:
        # Parsed once, here: every reader compares Version and Status, never re-parses strings.
        object.__setattr__(self, "trl", parse_version(self.trl, "cell.trl"))
        object.__setattr__(self, "transformers", parse_version(self.transformers, "cell.transformers"))
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "axes", {name: str(parse_version(v, f"cell.axes.{name}"))
                                          for name, v in self.axes.items()})

    @property
    def id(self) -> str:
        return cell_id(self.trl, self.transformers, self.resolution, self.forced, self.trainer, self.axes)

    @property
    def pair(self) -> tuple[Version, Version]:
        return self.trl, self.transformers

    @property
    def all_axes(self) -> dict[str, Version]:
        """Every axis of the cell in order: trl, transformers, then the grid's further axes."""
        return {"trl": self.trl, "transformers": self.transformers,
                **{name: Version(v) for name, v in self.axes.items()}}

    @property
    def key(self) -> tuple[str, Version, Version, tuple[tuple[str, Version], ...], str, bool]:
        """Sort order everywhere: trainer, then versions, then resolution."""
        further = tuple((name, Version(v)) for name, v in self.axes.items())
        return self.trainer, self.trl, self.transformers, further, self.resolution, self.forced

    @property
    def failed(self) -> bool:
        return self.status != Status.COMPATIBLE

    @property
    def declared_ok(self) -> bool | None:
        """Does TRL's own metadata allow this transformers? None when unknown."""
        if self.declared is None:
            return None
        try:
            return SpecifierSet(self.declared).contains(self.transformers, prereleases=True)
        except ValueError:
            return None

    def use_keyword(self) -> str | None:
        """The keyword a script should pass: accepted beats deprecated; the new name wins ties."""
        for state in BUILT:
            for kw in KEYWORDS:
                if self.keyword.get(kw) == state:
                    return kw
        return None

    def probe(self, key: str) -> Any:
        """A registry probe's value, wherever the contract keeps it (see compat.probes)."""
        head, _, rest = key.partition(".")
        if head in FIELDS and head != "probes":
            value = getattr(self, head)
            return value.get(rest) if rest and isinstance(value, Mapping) else value
        return self.probes.get(key)

    def serialize(self) -> dict[str, Any]:
        data = asdict(self)
        data["trl"], data["transformers"] = str(self.trl), str(self.transformers)
        data["warnings"], data["yanked"], data["flaky"] = list(self.warnings), list(self.yanked), list(self.flaky)
        if self.tests is not None:
            data["tests"]["failed"] = [asdict(f) for f in self.tests.failed]
        return plain(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellResult:
        """A cell from its JSON form, defaults for fields older documents lack. Not validated here:
        readers of documents (compat.harness.documents) check the schema first."""
        d = dict(data)
        d["trl"] = parse_version(d["trl"], "cell.trl")
        d["transformers"] = parse_version(d["transformers"], "cell.transformers")
        d["status"] = Status(d["status"])
        d["failure"] = Failure.from_dict(d["failure"]) if d.get("failure") else None
        d["tests"] = Tests.from_dict(d.get("tests"))
        for name in ("warnings", "yanked", "flaky"):
            d[name] = tuple(d.get(name) or ())
        d["keyword"] = {**dict.fromkeys(KEYWORDS, "untested"), **(d.get("keyword") or {})}
        for name in ("environment", "keyword_raised_by", "probes", "formatter", "adapter_detail", "timings", "axes"):
            d[name] = dict(d.get(name) or {})
        result = cls(**{k: v for k, v in d.items() if k in FIELDS})
        for key, value in result.probes.items():
            try:
                ok = probes.by_key(key).allows(value)
            except KeyError:
                ok = True  # a probe a newer suite added: kept, shown as measured
            if not ok:
                raise ContractError(f"cell {result.id}: probe {key!r} has a value {value!r} the registry does not allow")
        return result


FIELDS = {f.name for f in fields(CellResult)}


def plain(value: Any) -> Any:
    """JSON-ready: enums as their strings, non-finite floats kept (json writes NaN as the contract allows)."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value



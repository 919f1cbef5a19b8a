"""The result contract: typed cells, how a cell's observations become one, and
how compat.json is read and written. Field names are the contract in
DESIGN.md; other tools read them, so they only ever grow.

The one module host and cell code share (with the probe registry it reads).
Stdlib + packaging only. Versions are parsed once, here, into ``Version``;
statuses, stages and keyword states are ``StrEnum``s, so they compare and
serialise as the plain strings of the contract. Every document read or written
is validated against compat/schema/compat.schema.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from compat import probes
from compat.cell.validate import SchemaError, validate

__all__ = [
    "KEYWORDS", "SCHEMA_VERSION", "CellResult", "ContractError", "Document", "Drift", "Failure", "KeywordState",
    "Stage", "Status", "TestFailure", "Tests", "cell_id", "dumps_document", "load_document", "loads_document",
    "result_from_observations", "verdict",
]

SCHEMA_VERSION = 2
SCHEMA_DIR = Path(__file__).with_name("schema")
KEYWORDS: tuple[str, ...] = ("processing_class", "tokenizer")
RESOLUTIONS: tuple[str, ...] = ("latest", "as-of-release")
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


def cell_id(trl: object, transformers: object, resolution: str = "latest", forced: bool = False,
            trainer: str = "kto") -> str:
    """The one name a cell has everywhere: file names, nox sessions, reports. Built from parsed
    versions only, so it can never hold a path separator."""
    suffix = "" if resolution == "latest" else f"-{resolution}"
    return f"trl{trl}-tf{transformers}{suffix}{'-forced' if forced else ''}{'' if trainer == 'kto' else '-' + trainer}"


@dataclass(frozen=True)
class Drift:
    """A failure caused by a third-party package that moved under the pair."""

    kind: str  # undeclared-dependency | moved-api | third-party | unknown
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
    fault: str | None = None  # status error only: interrupt | signal | index | network | harness

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
        return cls(Stage(data["stage"]), str(data["message"]), data.get("raised_by"), parsed, data.get("fault"))


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
    trainer: str = "kto"
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

    def __post_init__(self) -> None:
        # Parsed once, here: every reader compares Version and Status, never re-parses strings.
        object.__setattr__(self, "trl", parse_version(self.trl, "cell.trl"))
        object.__setattr__(self, "transformers", parse_version(self.transformers, "cell.transformers"))
        object.__setattr__(self, "status", Status(self.status))

    @property
    def id(self) -> str:
        return cell_id(self.trl, self.transformers, self.resolution, self.forced, self.trainer)

    @property
    def pair(self) -> tuple[Version, Version]:
        return self.trl, self.transformers

    @property
    def key(self) -> tuple[str, Version, Version, str, bool]:
        """Sort order everywhere: trainer, then versions, then resolution."""
        return self.trainer, self.trl, self.transformers, self.resolution, self.forced

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
        if head in _FIELDS and head != "probes":
            value = getattr(self, head)
            return value.get(rest) if rest and isinstance(value, Mapping) else value
        return self.probes.get(key)

    def serialize(self) -> dict[str, Any]:
        data = asdict(self)
        data["trl"], data["transformers"] = str(self.trl), str(self.transformers)
        data["warnings"], data["yanked"], data["flaky"] = list(self.warnings), list(self.yanked), list(self.flaky)
        if self.tests is not None:
            data["tests"]["failed"] = [asdict(f) for f in self.tests.failed]
        return _plain(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, checked: bool = False) -> CellResult:
        """A cell from its JSON form, defaults for fields older documents lack. Validated against the
        schema unless the caller already validated the document holding it (``checked``)."""
        if not checked:
            try:
                validate(data, _cell_schema(), "cell")
            except SchemaError as exc:
                raise ContractError(str(exc)) from None
        d = dict(data)
        d["trl"] = parse_version(d["trl"], "cell.trl")
        d["transformers"] = parse_version(d["transformers"], "cell.transformers")
        d["status"] = Status(d["status"])
        d["failure"] = Failure.from_dict(d["failure"]) if d.get("failure") else None
        d["tests"] = Tests.from_dict(d.get("tests"))
        for name in ("warnings", "yanked", "flaky"):
            d[name] = tuple(d.get(name) or ())
        d["keyword"] = {**dict.fromkeys(KEYWORDS, "untested"), **(d.get("keyword") or {})}
        for name in ("environment", "keyword_raised_by", "probes", "formatter", "adapter_detail", "timings"):
            d[name] = dict(d.get(name) or {})
        result = cls(**{k: v for k, v in d.items() if k in _FIELDS})
        for key, value in result.probes.items():
            try:
                ok = probes.by_key(key).allows(value)
            except KeyError:
                ok = True  # a probe a newer suite added: kept, shown as measured
            if not ok:
                raise ContractError(f"cell {result.id}: probe {key!r} has a value {value!r} the registry does not allow")
        return result


_FIELDS = {f.name for f in fields(CellResult)}


def _plain(value: Any) -> Any:
    """JSON-ready: enums as their strings, non-finite floats kept (json writes NaN as the contract allows)."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- observations

# The cell suite streams one JSON object per line to $COMPAT_CELL_RESULT (as
# pytest-reportlog does), so a crash keeps everything measured before it.
# Each record has exactly one of these keys, saying how it folds in:
#   {"probe": KEY, "value": V}                     a registry probe (compat.probes)
#   {"set": NAME, "value": V}                      training, adapter, environment, ...
#   {"merge": "a.b", "sub": K, "value": V}         obs["a"]["b"][K] = V (formatter outcomes, ...)
#   {"failure": STAGE, "message": ..., ...}        the first failure of a stage wins
#   {"warning": {...}}                             kept once
#   {"test": NODEID, "outcome": O, "stage": S, "message": M}   one pytest phase report
#   {"exit": N}                                    pytest's exit status, last


def fold_observations(lines: Iterable[str]) -> dict[str, Any]:
    """The observation record a cell suite streamed, folded into one dict (a torn last line is ignored)."""
    obs: dict[str, Any] = {"probes": {}, "failures": {}, "warnings": []}
    tests: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the line a crash cut short
        if not isinstance(rec, dict):
            continue
        if "probe" in rec:
            obs["probes"][rec["probe"]] = rec.get("value")
        elif "set" in rec:
            obs[rec["set"]] = rec.get("value")
        elif "merge" in rec:
            target = obs
            for part in str(rec["merge"]).split("."):
                target = target.setdefault(part, {})
            target[str(rec.get("sub"))] = rec.get("value")
        elif "failure" in rec:
            obs["failures"].setdefault(rec["failure"], {k: v for k, v in rec.items() if k != "failure"})
        elif "warning" in rec and rec["warning"] not in obs["warnings"]:
            obs["warnings"].append(rec["warning"])
        elif "test" in rec:
            seen = tests.setdefault(rec["test"], {"outcome": "passed"})
            rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 2}
            if rank.get(rec.get("outcome"), 0) > rank[seen["outcome"]]:
                seen.update(outcome=rec["outcome"], message=rec.get("message", ""), stage=rec.get("stage"))
        elif "exit" in rec:
            obs["pytest_exit"] = rec["exit"]
    if tests:
        obs["tests"] = {
            "passed": sum(t["outcome"] == "passed" for t in tests.values()),
            "skipped": sum(t["outcome"] == "skipped" for t in tests.values()),
            "failed": [{"id": nodeid, "outcome": t["outcome"], "message": t["message"], "stage": t.get("stage")}
                       for nodeid, t in tests.items() if t["outcome"] in ("failed", "error")],
        }
    return obs


# --------------------------------------------------------------------------- verdict


def training_problem(training: Mapping[str, Any] | None) -> str | None:
    """Why a training record does not count as BF16 KTO training, if it does not."""
    if not training:
        return "no training record"
    losses = list(training.get("losses") or [])
    steps = int(training.get("steps") or 0)
    if steps < MIN_STEPS or len(losses) < MIN_STEPS:
        return f"expected at least {MIN_STEPS} optimizer steps with logged losses, got steps={steps}, {len(losses)} losses"
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in losses):
        return f"non-finite loss: {losses}"
    if training.get("dtype") != "bfloat16":
        return f"training forward ran in {training.get('dtype')}, not bfloat16"
    return None


def _stage_of(name: str | None, default: Stage) -> Stage:
    try:
        return Stage(name) if name else default
    except ValueError:
        return default


def verdict(obs: Mapping[str, Any], adapter_required: bool = True) -> tuple[Status, Failure | None]:
    """The status a cell earned: ``compatible`` only when every check passed.

    The checks: KTO imported; a keyword built the trainer and the tokenizer
    landed in its processing_class; at least three BF16 optimizer steps with
    finite losses; the adapter run passed (where the trainer has one); and no
    test of the cell suite failed. The first failing check, in pipeline order,
    is the stage the cell is charged to.
    """
    recorded = obs.get("failures", {})
    problems: dict[Stage, tuple[str, str | None]] = {}
    for stage, f in recorded.items():
        problems.setdefault(_stage_of(stage, Stage.CONSTRUCT), (f.get("message", ""), f.get("raised_by")))
    probes_seen = obs.get("probes", {})
    if not probes_seen.get("import_path"):
        problems.setdefault(Stage.IMPORT, ("the trainer class did not import (no import location found)", None))
    built = [kw for kw in KEYWORDS if probes_seen.get(f"keyword.{kw}") in BUILT]
    if not built:
        problems.setdefault(Stage.CONSTRUCT, ("no tokenizer keyword built the trainer", None))
    trained = training_problem(obs.get("training"))
    if trained:
        problems.setdefault(Stage.TRAIN, (trained, None))
    if adapter_required and obs.get("adapter") != "pass":
        detail = "; ".join(f"{k}: {v}" for k, v in sorted((obs.get("adapter_detail") or {}).items()))
        problems.setdefault(Stage.ADAPTER, (f"adapter check {obs.get('adapter') or 'did not run'}"
                                            + (f": {detail}" if detail else ""), None))
    for test in (obs.get("tests") or {}).get("failed", ()):
        stage = _stage_of(test.get("stage"), Stage.TRAIN)
        problems.setdefault(stage, (f"cell test {test['id']} {test.get('outcome', 'failed')}: {test['message']}", None))
    if not problems:
        return Status.COMPATIBLE, None
    stage = min(problems, key=lambda s: PIPELINE.index(s) if s in PIPELINE else len(PIPELINE))
    message, raised_by = problems[stage]
    drift = recorded.get(str(stage), {}).get("drift")
    return Status.INCOMPATIBLE, Failure.from_dict({"stage": stage, "message": message, "raised_by": raised_by,
                                                   "drift": drift})


def result_from_observations(trl: Version, transformers: Version, resolution: str, obs: Mapping[str, Any], *,
                             trainer: str = "kto", adapter_required: bool = True, **identity: Any) -> CellResult:
    """A cell's result from what its suite observed: the registry says where each probe goes."""
    status, failure = verdict(obs, adapter_required)
    values: dict[str, Any] = {"keyword": dict.fromkeys(KEYWORDS, "untested"), "probes": {}}
    for probe in probes.for_trainer(trainer):
        value = obs.get("probes", {}).get(probe.key)
        head, _, rest = probe.key.partition(".")
        if head not in _FIELDS or head == "probes":
            if value is not None:
                values["probes"][probe.key] = value
        elif rest:
            values.setdefault(head, {})[rest] = value
        else:
            values[head] = value
    values["keyword"] = {k: v or "untested" for k, v in values["keyword"].items()}
    tests = obs.get("tests")
    return CellResult(
        trl=trl, transformers=transformers, resolution=resolution, status=status, trainer=trainer, failure=failure,
        environment=dict(obs.get("environment", {})),
        keyword_raised_by=dict(obs.get("keyword_raised_by", {})),
        formatter={k: dict(v) for k, v in (obs.get("formatter") or {}).items()},
        training=obs.get("training"),
        adapter=obs.get("adapter"),
        adapter_outcome=obs.get("adapter_outcome"),
        adapter_detail=dict(obs.get("adapter_detail") or {}),
        tests=Tests.from_dict({**tests, "failed": [{k: f[k] for k in ("id", "message", "outcome") if k in f}
                                                   for f in tests.get("failed", ())]}) if tests else None,
        warnings=tuple(obs.get("warnings", ())),
        **values, **identity,
    )


# --------------------------------------------------------------------------- findings

FINDINGS_SCHEMA_VERSION = 2


def facts(result: CellResult) -> dict[str, Any]:
    """What one cell says for findings.json: each registry finding (from a compatible cell),
    the tokenizer keyword to use, and whether the pair is broken or drifted."""
    out: dict[str, Any] = {}
    if result.forced or result.status in (Status.ERROR, Status.FLAKY):
        return out  # forced runs test metadata, faults say nothing; callers pick the trainers the adapter covers
    if result.status == Status.COMPATIBLE:
        out["keyword"] = result.use_keyword()
        for probe in probes.findings():
            out[probe.finding] = result.probe(probe.key)  # type: ignore[index]
    f = result.failure
    if f is not None and result.status in (Status.INCOMPATIBLE, Status.UNRESOLVABLE):
        first = f.message.splitlines()[0][:300] if f.message else ""
        if f.drift is None:
            out["broken"] = {"status": str(result.status), "stage": str(f.stage), "message": first,
                             "raised_by": f.raised_by}
            refused = {kw: by for kw, by in sorted(result.keyword_raised_by.items())
                       if by and result.keyword.get(kw) == KeywordState.REJECTED}
            if refused and f.stage == Stage.CONSTRUCT:  # which class refused which keyword, both when both do
                out["broken"]["refused"] = refused
        else:
            # Drift breaks an environment, not the pair: a user whose dependencies did not drift
            # must not be refused, so it is reported, never "broken".
            out["drift"] = {"stage": str(f.stage), "message": first, "resolution": result.resolution,
                            "kind": f.drift.kind, "package": f.drift.package, "importer": f.drift.importer,
                            "cause": f.drift.describe()}
    return {k: v for k, v in out.items() if v is not None}


def point_findings(result: CellResult) -> dict[str, Any]:
    """findings.json for this one cell alone: every fact a rule covering exactly its pair."""
    pair = [str(result.trl), str(result.transformers)]
    rules = {name: [{"trl": f"=={pair[0]}", "transformers": f"=={pair[1]}", "value": value, "measured": [pair]}]
             for name, value in facts(result).items()}
    return {"schema_version": FINDINGS_SCHEMA_VERSION, "facts": rules,
            "working": [pair] if result.status == Status.COMPATIBLE and "keyword" in rules else []}


# --------------------------------------------------------------------------- documents


@cache
def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def _cell_schema() -> dict[str, Any]:
    whole = _schema("compat")
    return {**whole["$defs"]["cell"], "$defs": whole["$defs"]}


def schema(name: str) -> dict[str, Any]:
    """The committed JSON Schema `compat` or `findings` (a copy: callers may not edit the cached one)."""
    return json.loads(json.dumps(_schema(name)))


@dataclass(frozen=True)
class Document:
    """One compat.json: run metadata and its cells."""

    meta: dict[str, Any]
    cells: tuple[CellResult, ...]


def loads_document(text: str, source: str = "compat.json") -> Document:
    """Parse, validate and expand a compat.json; ContractError names the source and what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ContractError(f"{source}: not JSON: {exc}") from None
    try:
        validate(data, _schema("compat"), source)
    except SchemaError as exc:
        raise ContractError(str(exc)) from None
    tables = data.get("formatter_tables", [])
    cells = []
    for i, raw in enumerate(data["cells"]):
        raw = dict(raw)
        formatter = {}
        for kind, value in (raw.get("formatter") or {}).items():
            if isinstance(value, int):
                if value >= len(tables):
                    raise ContractError(f"{source}: cells[{i}].formatter.{kind}: no formatter_tables[{value}]")
                value = tables[value]
            formatter[kind] = value
        raw["formatter"] = formatter
        try:
            cells.append(CellResult.from_dict(raw, checked=True))
        except ContractError as exc:
            raise ContractError(f"{source}: cells[{i}]: {exc}") from None
    meta = {k: v for k, v in data.items() if k not in ("cells", "schema_version", "formatter_tables")}
    return Document(meta, tuple(cells))


def load_document(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not UTF-8 text") from None
    return loads_document(text, str(path))


def document_data(meta: Mapping[str, Any], cells: Iterable[CellResult]) -> dict[str, Any]:
    """The compact (schema_version 2) JSON form: each distinct formatter map stored once."""
    tables: dict[str, int] = {}
    out_cells = []
    for r in sorted(cells, key=lambda c: c.key):
        d = r.serialize()
        d.pop("cache_key", None)
        refs = {}
        for kind, outcomes in sorted(r.formatter.items()):
            text = json.dumps(outcomes, sort_keys=True)
            refs[kind] = tables.setdefault(text, len(tables))
        d["formatter"] = refs
        out_cells.append(d)
    ordered = sorted(tables, key=tables.__getitem__)
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in meta.items() if k not in ("cells", "schema_version")},
            "formatter_tables": [json.loads(t) for t in ordered], "cells": out_cells}
    try:
        validate(data, _schema("compat"), "compat.json being written")
    except SchemaError as exc:
        raise ContractError(str(exc)) from None
    return data


# JSON is written ASCII-escaped: a lone surrogate in an error message (seen in the wild) would
# otherwise stop the UTF-8 encoder halfway through a report.
def dumps_document(meta: Mapping[str, Any], cells: Iterable[CellResult]) -> str:
    return json.dumps(document_data(meta, cells), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def dumps_cell(result: CellResult) -> str:
    return json.dumps(result.serialize(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def loads_cell(text: str, source: str) -> CellResult:
    try:
        return CellResult.from_dict(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise ContractError(f"{source}: {exc}") from None


def replace_status(result: CellResult, status: Status, failure: Failure | None) -> CellResult:
    return replace(result, status=status, failure=failure)


def outcome(result: CellResult) -> dict[str, Any]:
    """What a cell observed about its pair: the part two runs of one cell must agree on.
    Timings, logs and cache keys differ between any two runs and are left out."""
    data = result.serialize()
    keys = ["status", "failure", "formatter", "adapter", "environment"]
    keys += sorted({p.key.partition(".")[0] if p.key.partition(".")[0] in _FIELDS else "probes" for p in probes.PROBES})
    return {k: data.get(k) for k in dict.fromkeys(keys)}


def sort_cells(cells: Sequence[CellResult]) -> list[CellResult]:
    return sorted(cells, key=lambda c: c.key)

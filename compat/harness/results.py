"""Per-cell results: the data half of the pipeline (serialize / from_dict, no I/O policy).

Field names follow the result contract in DESIGN.md; other tools read them.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("compatible", "incompatible", "unresolvable", "error")
STAGES = ("resolve", "install", "import", "construct", "format", "train", "timeout", "interrupted")
KEYWORDS = ("processing_class", "tokenizer")


def cell_id(trl: object, transformers: object, resolution: str, forced: bool) -> str:
    """The one name a cell has everywhere: file names, nox sessions, reports."""
    suffix = "" if resolution == "latest" else f"-{resolution}"
    return f"trl{trl}-tf{transformers}{suffix}{'-forced' if forced else ''}"


@dataclass(frozen=True)
class Failure:
    stage: str
    message: str
    raised_by: str | None = None
    # Broken by a third-party dependency that moved under the pair (e.g. today's
    # pyarrow under an old datasets), not by trl/transformers themselves.
    drift: bool = False


@dataclass(frozen=True)
class CellResult:
    trl: str
    transformers: str
    resolution: str
    status: str
    environment: dict[str, str] = field(default_factory=dict, hash=False)
    failure: Failure | None = None
    keyword: dict[str, str] = field(default_factory=lambda: {k: "untested" for k in KEYWORDS}, hash=False)
    keyword_raised_by: dict[str, str | None] = field(default_factory=dict, hash=False)
    import_path: str | None = None
    format_mode: str | None = None  # "conversational": the trainer applies chat templates itself; "text": pre-render
    formatter: dict[str, dict[str, str]] = field(default_factory=dict, hash=False)
    training: dict[str, Any] | None = field(default=None, hash=False)
    adapter: str | None = None  # pass|fail: the adapter script trained (compatible) or refused with advice (broken)
    adapter_outcome: str | None = None  # "trained" | "refused"
    warnings: tuple[dict[str, str], ...] = ()
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict, hash=False)
    cache_key: str = ""
    log: str | None = None
    forced: bool = False  # run with uv overrides although TRL's metadata forbids the pair
    yanked: tuple[str, ...] = ()  # which of trl/transformers is a yanked release
    declared: str | None = None  # what TRL's metadata requires of transformers
    released: str = ""  # the later upload time of the two releases

    @property
    def declared_ok(self) -> bool | None:
        """Does TRL's own metadata allow this transformers? None when unknown."""
        if self.declared is None:
            return None
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.declared).contains(self.transformers, prereleases=True)

    @property
    def id(self) -> str:
        return cell_id(self.trl, self.transformers, self.resolution, self.forced)

    @property
    def failed(self) -> bool:
        return self.status != "compatible"

    def use_keyword(self) -> str | None:
        """The keyword a script should pass: accepted beats deprecated; the new name wins ties."""
        for state in ("accepted", "deprecated"):
            for kw in KEYWORDS:
                if self.keyword.get(kw) == state:
                    return kw
        return None

    def serialize(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CellResult":
        data = dict(data)
        for required in ("trl", "transformers", "resolution", "status"):
            if required not in data:
                raise ValueError(f"result is missing {required!r}")
        if data["status"] not in STATUSES:
            raise ValueError(f"unknown status {data['status']!r}")
        fail = data.get("failure")
        data["failure"] = Failure(**fail) if fail else None
        data["warnings"] = tuple(data.get("warnings") or ())
        data["yanked"] = tuple(data.get("yanked") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def write_json(path: Path, data: Any) -> None:
    """Atomic write: a reader never sees half a file, a crash never leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_result(path: Path) -> CellResult | None:
    """A stored result, or None when it is missing, truncated or corrupt (so it is rerun)."""
    try:
        return CellResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


_ORDER = {s: i for i, s in enumerate(("import", "construct", "format", "train"))}


_PAIR = ("trl", "transformers")
_MISSING = re.compile(r"No module named '([\w.]+)'")


def is_drift(stage: str, message: str, raised_by: str | None) -> bool:
    """An import failure raised inside a third-party package, or a missing third-party module."""
    if stage != "import":
        return False
    missing = _MISSING.search(message)
    if missing:
        return missing.group(1).split(".")[0] not in (*_PAIR, "torch", "compat")
    top = (raised_by or "").split(".")[0]
    return bool(top) and top not in _PAIR


def _first_failure(failures: dict[str, dict[str, Any]]) -> Failure | None:
    for stage in sorted(failures, key=lambda s: _ORDER.get(s, 99)):
        f = failures[stage]
        message, raised_by = f.get("message", ""), f.get("raised_by")
        return Failure(stage, message, raised_by, is_drift(stage, message, raised_by))
    return None


def verdict(obs: dict[str, Any]) -> tuple[str, Failure | None]:
    """Status from what the cell observed, per the contract's meaning of `compatible`."""
    failure = _first_failure(obs.get("failures", {}))
    kws = obs.get("keyword", {})
    built = any(kws.get(k) in ("accepted", "deprecated") for k in KEYWORDS)
    losses = (obs.get("training") or {}).get("losses") or []
    trained = len(losses) >= 1 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses)
    if obs.get("import_path") and built and trained:
        return "compatible", None
    if failure is None:
        stage = "import" if not obs.get("import_path") else "construct" if not built else "train"
        failure = Failure(stage, f"cell suite ended without a {stage} result (pytest exit {obs.get('pytest_exit')})")
    return "incompatible", failure

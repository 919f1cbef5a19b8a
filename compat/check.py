"""`python -m compat check`: is *my* installed pair measured, broken, or unknown?

Reads the installed versions from package metadata (nothing heavy is
imported) and answers from the same findings the adapter consults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from compat import adapter


@dataclass(frozen=True)
class CheckReport:
    trl: str
    transformers: str
    status: str  # "compatible" | "broken" | "unmeasured"
    keyword: str | None = None
    import_path: str | None = None
    format_mode: str | None = None
    broken: dict[str, Any] | None = None
    nearest: list[dict[str, str]] = field(default_factory=list)
    pip: str | None = None
    adapter_plan: str = ""
    drift: dict[str, Any] | None = None  # measured dependency drift for this pair under today's resolution

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "broken" else 0


def _pip(pair: tuple[str, str]) -> str:
    return f"pip install 'trl=={pair[0]}' 'transformers=={pair[1]}'"


def check(pair: tuple[str, str]) -> CheckReport:
    keyword, broken = adapter.lookup("keyword", pair), adapter.lookup("broken", pair)
    near = adapter.nearest_working(pair)
    common = {"trl": pair[0], "transformers": pair[1], "nearest": [{"trl": a, "transformers": b} for a, b in near],
              "pip": _pip(near[0]) if near else None, "drift": adapter.lookup("drift", pair)}
    if broken:
        return CheckReport(status="broken", broken=broken, adapter_plan="load_kto() raises BrokenPairError with this advice before any heavy work", **common)
    if keyword:
        mode = adapter.lookup("format_mode", pair)
        plan = f"passes the tokenizer as {keyword}=, imports KTO from {adapter.lookup('import_path', pair)}"
        plan += ", leaves conversational rows to the trainer" if mode == "conversational" else ", pre-renders conversational rows to text"
        return CheckReport(status="compatible", keyword=keyword, import_path=adapter.lookup("import_path", pair),
                           format_mode=mode, adapter_plan=plan, **{**common, "pip": None})
    return CheckReport(status="unmeasured", adapter_plan=(
        "outside the measured ranges: the adapter warns once (UnmeasuredPairWarning), picks the tokenizer keyword from "
        "KTOTrainer's real signature (walking past *args/**kwargs wrappers, checked with bind_partial), finds KTO by "
        "trying its known locations, and pre-renders conversational rows to text"), **common)


def render(r: CheckReport) -> str:
    head = f"trl {r.trl} + transformers {r.transformers}: "
    if r.status == "compatible":
        lines = [head + f"measured compatible. Hand the tokenizer to KTOTrainer as {r.keyword}=.",
                 f"KTOConfig/KTOTrainer import from: {r.import_path}", f"adapter: {r.adapter_plan}"]
    elif r.status == "broken":
        b = r.broken or {}
        lines = [head + f"measured BROKEN ({b.get('status')}): fails at the '{b.get('stage')}' stage.",
                 f"error: {b.get('message')}" + (f" (raised by {b['raised_by']})" if b.get("raised_by") else "")]
        if r.nearest:
            lines.append("nearest measured working pairs: " + "; ".join(f"trl {p['trl']} + transformers {p['transformers']}" for p in r.nearest))
            lines.append(f"to get there: {r.pip}")
        lines.append(f"adapter: {r.adapter_plan}")
    else:
        lines = [head + "not measured by this kto-compat's findings.", f"adapter: {r.adapter_plan}"]
        if r.nearest:
            lines.append(f"nearest measured working pair: trl {r.nearest[0]['trl']} + transformers {r.nearest[0]['transformers']} ({r.pip})")
    if r.drift:
        lines.append(f"note: with today's dependency resolution this pair fails at {r.drift.get('stage')} because a "
                     f"dependency drifted ({r.drift.get('message')}); dependencies as of its release work where noted above")
    return "\n".join(lines)


def installed() -> tuple[str, str]:
    try:
        return metadata.version("trl"), metadata.version("transformers")
    except metadata.PackageNotFoundError as exc:
        raise LookupError(f"{exc.name} is not installed in this Python ({__import__('sys').executable})") from None


def main(findings_path: Path | None, as_json: bool, pair: tuple[str, str] | None = None) -> int:
    if findings_path is not None:
        adapter.FINDINGS = json.loads(findings_path.read_text())
        adapter.findings.cache_clear()
    r = check(pair or installed())
    print(json.dumps({**asdict(r), "exit_code": r.exit_code}, indent=2, sort_keys=True) if as_json else render(r))
    return r.exit_code

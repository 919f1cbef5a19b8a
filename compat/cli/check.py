"""`kto-compat check`: is *my* installed pair measured, broken, inferred, or unknown?

Reads the installed versions from package metadata (nothing heavy is
imported) and answers from the same findings the adapter consults, saying
which answers a cell measured on this very pair and which are inferred from
measured pairs around it, and what the measurements ran on.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from compat import probes as registry
from compat.cell import adapter
from compat.contract import ContractError
from compat.harness import config as cfg
from compat.harness import findings as findings_mod
from compat.harness.plan import parse_pair
from compat.harness.reports.vocab import pip_line, plain
from compat.cli import options

PACKAGE_FINDINGS = Path(adapter.__file__).resolve().parents[1] / "findings.json"


@dataclass(frozen=True)
class CheckReport:
    trl: str
    transformers: str
    status: str  # "compatible" | "broken" | "drift" | "unmeasured"
    evidence: str = "none"  # "measured": a cell ran this pair; "inferred": inside a measured range
    keyword: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # every finding of the registry for this pair
    broken: dict[str, Any] | None = None
    nearest: list[dict[str, str]] = field(default_factory=list)
    pip: str | None = None
    adapter_plan: str = ""
    drift: dict[str, Any] | None = None
    measured_on: str = ""  # torch build, Python and device of the cells behind the findings

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "broken" else 0


def _evidence(fact: str, pair: tuple[str, str]) -> str:
    rule = adapter._rule(fact, pair)
    if rule is None:
        return "none"
    return "measured" if adapter._measured(rule, pair) else "inferred"


def measured_on(data: dict[str, Any]) -> str:
    g = data.get("generated_from", {})
    parts = [f"torch {g['torch']}" if g.get("torch") else "", f"Python {g['python']}" if g.get("python") else "",
             str(g.get("devices") or "")]
    return ", ".join(p for p in parts if p) or "unknown (these findings do not say)"


def check(pair: tuple[str, str]) -> CheckReport:
    keyword, broken = adapter.lookup("keyword", pair), adapter.lookup("broken", pair)
    near = adapter.nearest_working(pair)
    values = {p.finding: adapter.lookup(p.finding, pair) for p in registry.findings() if p.finding}
    common: dict[str, Any] = {
        "trl": pair[0], "transformers": pair[1], "nearest": [{"trl": a, "transformers": b} for a, b in near],
        "pip": pip_line(*near[0]) if near else None, "drift": adapter.lookup("drift", pair),
        "facts": {k: v for k, v in values.items() if v is not None}, "measured_on": measured_on(adapter.findings())}
    if broken:
        return CheckReport(status="broken", broken=broken, evidence=_evidence("broken", pair),
                           adapter_plan="load_kto() raises BrokenPairError with this advice before any heavy work", **common)
    if keyword:
        mode = values.get("format_mode")
        plan = f"passes the tokenizer as {keyword}=, imports KTO from {values.get('import_path')}"
        plan += ", leaves conversational rows to the trainer" if mode == "conversational" else ", pre-renders conversational rows to text"
        return CheckReport(status="compatible", keyword=keyword, evidence=_evidence("keyword", pair),
                           adapter_plan=plan, **{**common, "pip": None})
    if common["drift"]:
        return CheckReport(status="drift", evidence=_evidence("drift", pair), adapter_plan=(
            "load_kto() raises BrokenPairError explaining the drift where KTO fails to import; where your "
            "environment's dependencies did not drift, it works as measured"), **common)
    return CheckReport(status="unmeasured", adapter_plan=(
        "outside the measured ranges: the adapter warns once (UnmeasuredPairWarning), picks the tokenizer keyword "
        "every constructor in KTOTrainer's chain takes (transformers' Trainer included; BrokenPairError if none), "
        "finds KTO by trying its known locations, and pre-renders conversational rows to text"), **common)


def render(r: CheckReport) -> str:
    head = f"trl {r.trl} + transformers {r.transformers}: "
    how = {"measured": "measured", "inferred": "inferred (not itself measured; inside a measured range)"}.get(r.evidence, "")
    if r.status == "compatible":
        lines = [head + f"{how} compatible. Hand the tokenizer to KTOTrainer as {r.keyword}=.",
                 f"KTOConfig/KTOTrainer import from: {r.facts.get('import_path')}", f"adapter: {r.adapter_plan}"]
    elif r.status == "broken":
        b = r.broken or {}
        lines = [head + f"{how} BROKEN ({b.get('status')}): fails at the '{b.get('stage')}' stage.",
                 f"error: {b.get('message')}" + (f" (raised by {b['raised_by']})" if b.get("raised_by") else "")]
        if r.nearest:
            lines.append("nearest measured working pairs: " + "; ".join(f"trl {p['trl']} + transformers {p['transformers']}" for p in r.nearest))
            lines.append(f"to get there: {r.pip}")
        lines.append(f"adapter: {r.adapter_plan}")
    elif r.status == "drift":
        d = r.drift or {}
        lines = [head + f"{how} to fail with today's dependency resolution, at {d.get('stage')}: "
                 f"{d.get('cause') or d.get('message')} (dependency drift, not a fault of the pair).",
                 f"error: {d.get('message')}",
                 f"measured to work: {d['remedy']}" if d.get("remedy") else "no resolution of it was measured to work",
                 f"adapter: {r.adapter_plan}"]
    else:
        lines = [head + "not measured by this kto-compat's findings.", f"adapter: {r.adapter_plan}"]
        if r.nearest:
            lines.append(f"nearest measured working pair: trl {r.nearest[0]['trl']} + transformers {r.nearest[0]['transformers']} ({r.pip})")
    if r.drift and r.status != "drift":
        lines.append(f"note: with today's dependency resolution this pair fails at {r.drift.get('stage')}: "
                     f"{r.drift.get('cause') or r.drift.get('message')}"
                     + (f". Measured to work: {r.drift['remedy']}" if r.drift.get("remedy") else ""))
    if r.status != "unmeasured":
        lines.append(f"measured on: {r.measured_on}")
    return "\n".join(lines)


def installed() -> tuple[str, str]:
    from packaging.version import InvalidVersion, Version

    try:
        found = metadata.version("trl"), metadata.version("transformers")
    except metadata.PackageNotFoundError as exc:
        raise cfg.ConfigError(f"{exc.name} is not installed in this Python; install the pair to check it, or pass "
                              "--pair trl==A,transformers==B") from None
    for name, version in zip(("trl", "transformers"), found):
        try:
            Version(str(version))
        except InvalidVersion:
            raise cfg.ConfigError(f"the installed {name} has version {plain(str(version))[:80]!r}, which is not a "
                                  "PEP 440 version; pass --pair trl==A,transformers==B") from None
    return found


def cmd_check(args: argparse.Namespace) -> int:
    """The installed pair's measured status; non-zero exit for a pair measured broken."""
    pair = None
    if args.pair:
        trl, transformers = parse_pair(args.pair)
        pair = (str(trl), str(transformers))
    path = args.findings or PACKAGE_FINDINGS
    try:
        data = findings_mod.load(path)
    except ContractError as exc:
        raise cfg.ConfigError(str(exc)) from None
    adapter.FINDINGS = data
    adapter.findings.cache_clear()
    r = check(pair or installed())
    # JSON escapes control characters itself; text goes to a terminal, which would obey them.
    print(json.dumps({**asdict(r), "exit_code": r.exit_code}, indent=2, sort_keys=True) if args.json else plain(render(r)))
    return r.exit_code


def register(sub: argparse._SubParsersAction) -> None:
    ck = sub.add_parser("check", formatter_class=options.Help,
                        help="measured status of the installed trl/transformers pair (exit 1 when broken)")
    ck.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
    ck.add_argument("--findings", type=Path, default=None, metavar="FILE",
                    help="findings file (default: the package's compat/findings.json)")
    ck.add_argument("--pair", default=None, metavar="PAIR", help="check trl==A,transformers==B instead of the installed pair")
    ck.set_defaults(func=cmd_check)

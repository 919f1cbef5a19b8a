"""What KTOTrainer refuses, as measured by the matrix: read from findings.json, never typed here.

KTOTrainer with its default loss computes a KL term from the batch's other
rows, and refuses ``per_device_train_batch_size=1`` for it in some releases
(``ValueError: Actual (not effective) batch size must be > 1``). Which
releases is a measured fact, ``facts["batch_size_one"]`` in findings.json:
rules ``{"trl": SPEC, "transformers": SPEC, "value": "accepted"|"rejected",
"measured": [[trl, transformers], ...]}``. Until a pair is measured accepted,
no recommendation goes below 2 rows per device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from .shape import MemoryInputError

FACT = "batch_size_one"
LM_HEAD = "lm_head"  # the probe's finding: "fused" where KTOTrainer computes log-probs through TRL's fused, chunked LM head
DEFAULT_FINDINGS = Path(__file__).parents[1] / "findings.json"


@dataclass(frozen=True)
class BatchOne:
    """Whether batch 1 may be recommended, and the measurement (or its absence) that says so."""

    status: str  # "accepted" | "rejected" | "mixed" | "unmeasured"
    citation: str

    @property
    def min_batch(self) -> int:
        return 1 if self.status == "accepted" else 2


UNMEASURED = BatchOne("unmeasured", "not measured: no findings consulted")


def load_findings(path: Path) -> dict[str, Any]:
    """The findings object, validated against compat/schema/findings.schema.json; a missing file
    is no facts (unmeasured), anything unreadable or malformed is an error naming it."""
    from compat.contract import ContractError
    from compat.harness.findings import load

    if not Path(path).exists():
        return {}
    try:
        return load(Path(path))
    except ContractError as exc:
        raise MemoryInputError(f"--findings {exc}") from None


def parse_pair(text: str) -> tuple[str, str]:
    """The one pair syntax every command takes (compat.harness.plan.parse_pair), both axes required."""
    from compat.harness.config import ConfigError
    from compat.harness.plan import parse_pair as parse

    try:
        trl, transformers = parse(text, "--pair")
    except ConfigError as exc:
        raise MemoryInputError(str(exc)) from None
    return str(trl), str(transformers)


def _rules(findings: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The fact's rules, checked: a malformed rule must not silently permit batch 1."""
    facts = findings.get("facts", {})
    rules = facts.get(FACT, []) if isinstance(facts, dict) else None
    if not isinstance(rules, list):
        raise MemoryInputError(f"--findings {source}: facts.{FACT} is not a list of rules")
    for i, rule in enumerate(rules):
        try:
            ok = rule["value"] in ("accepted", "rejected") and all(
                SpecifierSet(rule[k]) is not None for k in ("trl", "transformers"))
            ok = ok and all(len(p) == 2 for p in rule.get("measured", []))
        except (KeyError, TypeError, InvalidSpecifier):
            ok = False
        if not ok:
            raise MemoryInputError(f"--findings {source}: facts.{FACT}[{i}] is not a "
                                   "{trl, transformers, value: accepted|rejected, measured} rule")
    return rules


def _count(rule: dict[str, Any]) -> int:
    """Measured pairs behind a rule (a rule without its list stands for one measurement)."""
    return len(rule.get("measured") or [None])


def _contains(spec: str, version: str) -> bool:
    return SpecifierSet(spec).contains(Version(version), prereleases=True)


def batch_one(findings: dict[str, Any], pair: tuple[str, str] | None, source: str) -> BatchOne:
    """What the findings measured about per_device_train_batch_size=1, for ``pair`` or for all pairs."""
    rules = _rules(findings, source)
    refuses = sum(_count(r) for r in rules if r["value"] == "rejected")
    total = sum(_count(r) for r in rules)
    tally = f"KTOTrainer refuses per_device_train_batch_size=1 on {refuses} of {total} measured pairs"
    if pair is not None:
        name = f"trl {pair[0]} + transformers {pair[1]}"
        rule = next((r for r in rules if _contains(r["trl"], pair[0]) and _contains(r["transformers"], pair[1])), None)
        if rule is None:
            return BatchOne("unmeasured", f"not measured for {name} in {source}"
                                          + (f" ({refuses} of {total} measured pairs refuse it)" if total else ""))
        verb = "accepts" if rule["value"] == "accepted" else "refuses"
        return BatchOne(rule["value"], f"measured: KTOTrainer {verb} per_device_train_batch_size=1 on {name} "
                                       f"(findings rule trl{rule['trl']} + transformers{rule['transformers']}; "
                                       f"{refuses} of {total} measured pairs refuse it)")
    if not rules:
        return BatchOne("unmeasured", f"not measured: {source} has no {FACT} fact")
    if refuses == 0:
        return BatchOne("accepted", f"measured: KTOTrainer accepts per_device_train_batch_size=1 on {total} of "
                                    f"{total} measured pairs")
    status = "rejected" if refuses == total else "mixed"
    hint = "" if status == "rejected" else "; --pair picks one pair's measurement"
    return BatchOne(status, f"measured: {tally}{hint}")


@dataclass(frozen=True)
class FusedHead:
    """Which measured TRL releases compute KTO's log-probs through the fused, chunked LM head (the
    ``lm_head`` facts of findings.json, from compatible cells), for recipes that need it."""

    releases: tuple[str, ...]  # TRL releases with a cell measured "fused", oldest first
    measured: tuple[str, ...]  # every TRL release the fact was measured on ("fused" or "full")

    def words(self) -> str:
        """"measured in trl A-B, C" (runs of measured releases), or why no release is named."""
        if not self.measured:
            return "which TRL releases have it is not measured (these findings have no lm_head fact)"
        if not self.releases:
            return f"none of the {len(self.measured)} TRL releases measured has it"
        return f"measured in trl {', '.join(_runs(self.releases, self.measured))}"


NOT_READ = FusedHead((), ())  # no findings consulted


def _runs(have: tuple[str, ...], measured: tuple[str, ...]) -> list[str]:
    """Consecutive measured releases that have it, as lo-hi runs (a run never spans a measured release without it)."""
    runs: list[list[str]] = []
    for v in measured:
        if v in have:
            if runs and runs[-1][-1] == measured[measured.index(v) - 1]:
                runs[-1].append(v)
            else:
                runs.append([v])
    return [r[0] if len(r) == 1 else f"{r[0]}\u2013{r[-1]}" for r in runs]


def fused_head(findings: dict[str, Any], source: str) -> FusedHead:
    facts = findings.get("facts", {})
    rules = facts.get(LM_HEAD, []) if isinstance(facts, dict) else None
    if not isinstance(rules, list) or not all(isinstance(r, dict) and isinstance(r.get("measured", []), list)
                                              for r in rules):
        raise MemoryInputError(f"--findings {source}: facts.{LM_HEAD} is not a list of rules")
    seen: dict[str, set[str]] = {}
    for rule in rules:
        for pair in rule.get("measured") or []:
            seen.setdefault(str(pair[0]), set()).add(str(rule.get("value")))
    order = sorted(seen, key=Version)
    return FusedHead(tuple(v for v in order if "fused" in seen[v]), tuple(order))

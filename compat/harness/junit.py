"""reports/junit.xml and the GitHub job summary: the matrix in the shapes CI already displays.

One <testsuite> per cell, named by its id (`trl0.12.2-tf4.46.3`), with one
<testcase> per probe, in pipeline order: resolve, install, import,
keyword[processing_class], keyword[tokenizer], construct, format,
formatter[KIND] for each of kto-compat's formatters, training, adapter. Every
suite has the same testcases, so a dashboard can follow one probe across runs.

What each outcome means, chosen for what CI readers expect:

- <failure>: the pair does not do what the probe checks. An unresolvable pair
  fails `resolve` with type="unresolvable": a pair listed in the matrix that
  cannot be installed is an answer of "no", and most dashboards count a
  skipped test as passing, which would hide it.
- <error>: status "error", the harness itself failed; says nothing about the pair.
- <skipped>: only a probe the cell never reached because an earlier probe
  failed (that one carries the failure, so the suite is never green), or one
  this cell did not measure.
- The legacy formatter (the old example script's) is characterised, not
  asserted: it is known to break, so its counts go to the suite's
  <system-out> instead of a testcase that would fail on every pair.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import report
from .results import KEYWORDS, CellResult

_STAGES = ("resolve", "install", "import", "construct", "format", "train")
# XML 1.0 cannot carry these at all, escaped or not; a traceback may (ANSI colour codes, NULs).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: object) -> str:
    """XML-safe text; line ends become \n, as any XML parser would turn them on reading."""
    return _NOT_XML.sub("\ufffd", str(text).replace("\r\n", "\n").replace("\r", "\n"))


@dataclass(frozen=True)
class Probe:
    """One testcase: outcome is pass | failure | error | skipped."""

    name: str
    outcome: str = "pass"
    message: str = ""
    kind: str = ""  # the failure/error/skipped element's `type`
    text: str = ""
    seconds: float = 0.0


def _built(r: CellResult) -> bool:
    return any(r.keyword.get(k) in ("accepted", "deprecated") for k in KEYWORDS)


def _stage_probes(r: CellResult) -> dict[str, Probe]:
    """resolve..train: the failing stage fails, stages with evidence pass, the rest were not reached."""
    f = r.failure
    early = f.stage if f and f.stage in ("resolve", "install") else None  # suites only run after both
    losses = (r.training or {}).get("losses") or []
    evidence = {"resolve": early is None, "install": early is None, "import": bool(r.import_path),
                "construct": _built(r), "format": _built(r),
                "train": bool(losses) and all(isinstance(x, (int, float)) and math.isfinite(x) for x in losses)}
    target = None
    if f is not None:
        # A timeout or interruption is charged to the first stage it kept from finishing.
        target = f.stage if f.stage in _STAGES else next((s for s in _STAGES[2:] if not evidence[s]), "train")
    seconds = {"resolve": r.timings.get("resolve", 0.0), "install": r.timings.get("install", 0.0),
               "train": (r.training or {}).get("seconds", 0.0)}
    out: dict[str, Probe] = {}
    for stage in _STAGES:
        name = "training" if stage == "train" else stage
        secs = float(seconds.get(stage) or 0.0)
        if stage == target and f is not None:
            harness = r.status == "error"
            kind = "harness" if harness else "unresolvable" if r.status == "unresolvable" else f.stage
            text = f.message + (f"\nraised by: {f.raised_by}" if f.raised_by else "")
            text += "\ncause: a third-party dependency moved under this pair" if f.drift else ""
            out[name] = Probe(name, "error" if harness else "failure", f.message.splitlines()[0] if f.message else f.stage,
                              kind, text, secs)
        elif evidence[stage]:
            out[name] = Probe(name, seconds=secs)
        else:
            why = f"not reached: the cell failed at {f.stage}" if f else "not measured in this cell"
            out[name] = Probe(name, "skipped", why, "not-reached")
    return out


def _keyword(r: CellResult, kw: str) -> Probe:
    name, state = f"keyword[{kw}]", r.keyword.get(kw, "untested")
    if state in ("accepted", "deprecated"):
        return Probe(name, text=f"{kw}= {state}")
    if state == "rejected":
        by = r.keyword_raised_by.get(kw) or (r.failure.raised_by if r.failure and r.failure.stage == "construct" else None)
        return Probe(name, "failure", f"KTOTrainer({kw}=...) raised TypeError" + (f" in {by}" if by else ""), "rejected")
    why = f"not reached: the cell failed at {r.failure.stage}" if r.failure else f"keyword {state}"
    return Probe(name, "skipped", why, "not-reached")


def _formatter(r: CellResult, kind: str) -> Probe:
    name, outcomes = f"formatter[{kind}]", r.formatter.get(kind)
    if not outcomes:
        return Probe(name, "skipped", "not measured in this cell", "not-reached")
    bad = {case: o for case, o in sorted(outcomes.items()) if o != "pass"}
    if not bad:
        return Probe(name, text=f"{len(outcomes)} of {len(outcomes)} cases pass")
    summary = ", ".join(f"{o} x{n}" for o, n in sorted(Counter(bad.values()).items()))
    return Probe(name, "failure", f"{len(bad)} of {len(outcomes)} cases fail: {summary}", "formatter",
                 "\n".join(f"{case}: {o}" for case, o in bad.items()))


def probes(r: CellResult, kinds: Sequence[str]) -> list[Probe]:
    """The testcases of one cell, in pipeline order."""
    stages = _stage_probes(r)
    adapter = {"pass": Probe("adapter"), "fail": Probe("adapter", "failure", "the adapter failed on this pair", "adapter")}
    return [stages["resolve"], stages["install"], stages["import"], *(_keyword(r, k) for k in KEYWORDS),
            stages["construct"], stages["format"], *(_formatter(r, k) for k in kinds), stages["training"],
            adapter.get(r.adapter or "", Probe("adapter", "skipped", "not measured in this cell", "not-reached"))]


def _suite(r: CellResult, kinds: Sequence[str]) -> ET.Element:
    cases = probes(r, kinds)
    tally = Counter(p.outcome for p in cases)
    suite = ET.Element("testsuite", name=_x(r.id), tests=str(len(cases)), failures=str(tally["failure"]),
                       errors=str(tally["error"]), skipped=str(tally["skipped"]), time=f"{r.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    fields: dict[str, Any] = {"status": r.status, "trl": r.trl, "transformers": r.transformers, "resolution": r.resolution,
                              "import_path": r.import_path, "declared": r.declared, "forced": r.forced or None,
                              **{f"environment.{k}": v for k, v in sorted(r.environment.items())}}
    for key, value in fields.items():
        if value is not None:
            ET.SubElement(props, "property", name=_x(key), value=_x(value))
    for p in cases:
        case = ET.SubElement(suite, "testcase", classname=_x(r.id), name=p.name, time=f"{p.seconds:.3f}")
        if p.outcome != "pass":
            child = ET.SubElement(case, p.outcome, message=_x(p.message), type=_x(p.kind))
            child.text = _x(p.text) if p.text else None
        elif p.text:
            ET.SubElement(case, "system-out").text = _x(p.text)
    legacy = r.formatter.get("legacy")
    if legacy:
        counts = ", ".join(f"{o} x{n}" for o, n in sorted(Counter(legacy.values()).items()))
        ET.SubElement(suite, "system-out").text = _x(f"legacy formatter (old example script, characterised): {counts}")
    return suite


def to_xml(results: Sequence[CellResult]) -> str:
    """The whole report; xml.etree escapes everything, _x drops what XML cannot hold."""
    kinds = sorted({k for r in results for k in r.formatter if k != "legacy"})
    root = ET.Element("testsuites", name="kto-compat")
    for r in sorted(results, key=lambda r: r.id):
        root.append(_suite(r, kinds))
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root)))
    root.set("time", f"{sum(r.seconds for r in results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def summary(results: Sequence[CellResult], meta: Mapping[str, Any], max_failures: int = 40) -> str:
    """A job summary: counts, the grid (COMPAT.md's) and the first failing cells."""
    counts = Counter(r.status for r in results)
    out = ["## KTO compatibility: TRL x transformers", "",
           f"{len(results)} cells from profile `{report.md_escape(meta.get('profile', ''))}`: "
           + " · ".join(f"{sym} {counts[s]} {s}" for s, sym in report.SYMBOLS.items()), ""]
    for res in sorted({r.resolution for r in results}):
        out += [f"### Resolution: {report.md_escape(res)}", "", *report.grid([r for r in results if r.resolution == res]), ""]
    rows = report.failures(results)
    if len(rows) > max_failures + 2:
        rows = [*rows[: max_failures + 2], f"\n... and {len(rows) - max_failures - 2} more failing cells: see compat.html"]
    out += ["### Failing cells", "", *rows, ""]
    return "\n".join(out)


def append_step_summary(results: Sequence[CellResult], meta: Mapping[str, Any],
                        environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append the summary to $GITHUB_STEP_SUMMARY when GitHub Actions set it; elsewhere do nothing."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(summary(results, meta) + "\n")
    return path

"""junit.xml: the matrix in the shape CI dashboards already display.

One <testsuite> per cell, named by its id (`trl0.12.2-tf4.46.3`), with one
<testcase> per pipeline stage (resolve, install, import, construct, format,
training, adapter), one per probe of the registry (compat/probes.py) and one
per kto-compat formatter. Every suite of a trainer has the same testcases, so
a dashboard can follow one probe across runs; each failed cell test is listed
in the failing stage's text.

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

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compat import probes as registry
from compat.contract import BUILT, CellResult, Stage, Status
from compat.harness import specs
from compat.harness.reports.grid import ordered
from compat.harness.reports.vocab import first_line, xml

_STAGES = (Stage.RESOLVE, Stage.INSTALL, Stage.IMPORT, Stage.CONSTRUCT, Stage.FORMAT, Stage.TRAIN, Stage.ADAPTER)


@dataclass(frozen=True)
class Case:
    """One testcase: outcome is pass | failure | error | skipped."""

    name: str
    outcome: str = "pass"
    message: str = ""
    kind: str = ""  # the failure/error/skipped element's `type`
    text: str = ""
    seconds: float = 0.0


def _evidence(r: CellResult) -> dict[Stage, bool]:
    f = r.failure
    early = f.stage if f and f.stage in (Stage.RESOLVE, Stage.INSTALL) else None  # suites only run after both
    return {Stage.RESOLVE: early is None, Stage.INSTALL: early is None, Stage.IMPORT: bool(r.import_path),
            Stage.CONSTRUCT: any(r.keyword.get(k) in BUILT for k in r.keyword),
            Stage.FORMAT: any(r.keyword.get(k) in BUILT for k in r.keyword),
            Stage.TRAIN: r.status == Status.COMPATIBLE or bool(r.training and r.training.get("steps")),
            Stage.ADAPTER: r.adapter == "pass" or (not specs.adapter_covers(r.trainer) and r.status == Status.COMPATIBLE)}


def _stages(r: CellResult) -> list[Case]:
    """The failing stage fails, stages with evidence pass, the rest were not reached."""
    f = r.failure
    evidence = _evidence(r)
    target = None
    if f is not None:
        # A timeout or interruption is charged to the first stage it kept from finishing.
        target = f.stage if f.stage in _STAGES else next((s for s in _STAGES[2:] if not evidence[s]), Stage.TRAIN)
    seconds = {Stage.RESOLVE: r.timings.get("resolve", 0.0), Stage.INSTALL: r.timings.get("install", 0.0),
               Stage.TRAIN: (r.training or {}).get("seconds", 0.0)}
    tests = "\n".join(f"{t.id} {t.outcome}: {t.message}" for t in (r.tests.failed if r.tests else ()))
    out = []
    for stage in _STAGES:
        name = "training" if stage == Stage.TRAIN else str(stage)
        secs = float(seconds.get(stage) or 0.0)
        if stage == target and f is not None:
            harness = r.status == Status.ERROR
            kind = "harness" if harness else str(Status.UNRESOLVABLE) if r.status == Status.UNRESOLVABLE else str(f.stage)
            text = f.message + (f"\nraised by: {f.raised_by}" if f.raised_by else "")
            text += f"\ncause: {f.drift.describe()}" if f.drift else ""
            text += f"\nfailed cell tests:\n{tests}" if tests else ""
            out.append(Case(name, "error" if harness else "failure", first_line(f.message) or str(f.stage), kind, text, secs))
        elif evidence[stage]:
            out.append(Case(name, seconds=secs))
        else:
            why = f"not reached: the cell failed at {f.stage}" if f else "not measured in this cell"
            out.append(Case(name, "skipped", why, "not-reached"))
    return out


def _probe(r: CellResult, p: registry.Probe) -> Case:
    value = r.probe(p.key)
    if value is None or value in p.unmeasured:
        why = f"not reached: the cell failed at {r.failure.stage}" if r.failure else "not measured in this cell"
        return Case(p.label, "skipped", why, "not-reached")
    if p.good and value not in p.good:
        by = r.keyword_raised_by.get(p.key.partition(".")[2]) if p.key.startswith("keyword.") else None
        return Case(p.label, "failure", f"{p.key} = {value}" + (f" (raised by {by})" if by else ""), str(value))
    return Case(p.label, text=f"{p.key} = {value}")


def _formatter(r: CellResult, kind: str) -> Case:
    name, outcomes = f"formatter[{kind}]", r.formatter.get(kind)
    if not outcomes:
        return Case(name, "skipped", "not measured in this cell", "not-reached")
    bad = {case: o for case, o in sorted(outcomes.items()) if o != "pass"}
    if not bad:
        return Case(name, text=f"{len(outcomes)} of {len(outcomes)} cases pass")
    summary = ", ".join(f"{o} x{n}" for o, n in sorted(Counter(bad.values()).items()))
    return Case(name, "failure", f"{len(bad)} of {len(outcomes)} cases fail: {summary}", "formatter",
                "\n".join(f"{case}: {o}" for case, o in bad.items()))


def cases(r: CellResult, kinds: Sequence[str]) -> list[Case]:
    """The testcases of one cell: stages, then the trainer's registry probes, then formatters."""
    return [*_stages(r), *(_probe(r, p) for p in registry.for_trainer(r.trainer)),
            *(_formatter(r, k) for k in kinds if specs.adapter_covers(r.trainer))]


def _suite(r: CellResult, kinds: Sequence[str]) -> ET.Element:
    testcases = cases(r, kinds)
    tally = Counter(c.outcome for c in testcases)
    suite = ET.Element("testsuite", name=xml(r.id), tests=str(len(testcases)), failures=str(tally["failure"]),
                       errors=str(tally["error"]), skipped=str(tally["skipped"]), time=f"{r.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    fields: dict[str, Any] = {"status": r.status, "trainer": r.trainer, **r.all_axes,
                              "resolution": r.resolution, "import_path": r.import_path, "declared": r.declared,
                              "forced": r.forced or None, "suite": r.suite or None,
                              **{f"environment.{k}": v for k, v in sorted(r.environment.items())}}
    for key, value in fields.items():
        if value is not None:
            ET.SubElement(props, "property", name=xml(key), value=xml(value))
    for c in testcases:
        case = ET.SubElement(suite, "testcase", classname=xml(r.id), name=xml(c.name), time=f"{c.seconds:.3f}")
        if c.outcome != "pass":
            child = ET.SubElement(case, c.outcome, message=xml(c.message), type=xml(c.kind))
            child.text = xml(c.text) if c.text else None
        elif c.text:
            ET.SubElement(case, "system-out").text = xml(c.text)
    legacy = r.formatter.get("legacy")
    if legacy:
        counts = ", ".join(f"{o} x{n}" for o, n in sorted(Counter(legacy.values()).items()))
        ET.SubElement(suite, "system-out").text = xml(f"legacy formatter (old example script, characterised): {counts}")
    return suite


def document(results: Sequence[CellResult]) -> str:
    """The whole report; xml.etree escapes markup, vocab.xml drops what XML cannot hold."""
    kinds = sorted({k for r in results for k in r.formatter if k != "legacy"})
    root = ET.Element("testsuites", name="kto-compat")
    for r in ordered(results):
        root.append(_suite(r, kinds))
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root)))
    root.set("time", f"{sum(r.seconds for r in results):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

"""`kto-compat check`: is *my* environment measured compatible, broken, or not measured?

A cell measured an environment, not a pair in the abstract. So `check`
answers for the pair's facts (the same findings the adapter consults) and
then holds the environment against the cell it rests on: the distributions
installed here (default), the pins of a requirements or lock file
(``--requirements``), or nothing but the pair (``--pair``). ``--run`` runs the
cell suite itself in this Python, and its verdict is trusted over the table.

Exit codes: 0 measured compatible with no run-time difference from the
measured environment (or ``--run`` passed here); 1 broken (measured, or found
by ``--run``); 3 not measured, inferred, or compatible only with differences
``--run`` has not checked; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from compat import probes as registry
from compat.cell import adapter
from compat.cli import options
from compat.cli import requirements as reqfile
from compat.contract import DEFAULT_TRAINER, CompatError, ContractError, Resolution, Status
from compat.harness import axes, locks
from compat.harness import config as cfg
from compat.harness import environments as envs
from compat.harness import findings as findings_mod
from compat.harness.plan import parse_pins
from compat.harness.reports.vocab import pip_line, plain

PACKAGE_FINDINGS = findings_mod.PACKAGED
EXIT_OK, EXIT_BROKEN, EXIT_BAD_INPUT, EXIT_UNSURE = 0, 1, 2, 3
EXIT_HELP = """exit codes:
  0  measured compatible, and nothing the stack uses at run time differs from the measured environment
     (or --run passed here)
  1  broken: measured broken, your environment is the one measured failing, or --run failed here; or,
     on a machine without a GPU, measured to fail on CPU for a reason of the platform (platform-bound)
  3  not measured, inferred from measured pairs around it, or compatible only with differences from the
     measured environment that --run has not checked; a platform-bound pair on a machine with an NVIDIA GPU
  2  bad input (one line naming the file, field or version)"""


@dataclass(frozen=True)
class CheckReport:
    trl: str
    transformers: str
    status: str  # "compatible" | "broken" | "platform" (fails on CPU, platform-bound) | "drift" | "unmeasured"
    evidence: str = "none"  # "measured": a cell ran this pair; "inferred": inside a measured range
    keyword: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # every finding of the registry for this pair
    broken: dict[str, Any] | None = None
    nearest: list[dict[str, str]] = field(default_factory=list)
    pip: str | None = None  # the install line that reproduces the nearest working cell
    adapter_plan: str = ""
    drift: dict[str, Any] | None = None
    measured_on: str = ""  # torch build, Python and device of the cells behind the findings
    against: str = "pair"  # "pair" | "installed" | "requirements": what the environment was compared with
    cell: dict[str, Any] | None = None  # the measured cell the answer rests on, with its reproducing line
    differences: list[dict[str, Any]] = field(default_factory=list)  # run-time distributions that differ
    elsewhere: list[dict[str, Any]] = field(default_factory=list)  # the rest of the lock that differs (--verbose)
    unpinned: list[str] = field(default_factory=list)  # --requirements: recorded distributions left open
    bounds: list[str] = field(default_factory=list)  # versions beyond every measured release
    caveats: list[str] = field(default_factory=list)  # why a compatible answer is not a plain yes (exit 3)
    run: dict[str, Any] | None = None  # --run: the verdict of the cell suite run here
    platform: dict[str, Any] | None = None  # status platform: the failure, and why it belongs to the platform
    gpu: str | None = None  # this machine's GPU (None: none found), which no CPU cell measured
    axes: dict[str, str] = field(default_factory=dict)  # further axes the answer is for (datasets 3.6.0, ...)

    @property
    def exit_code(self) -> int:
        if self.run is not None:
            return EXIT_OK if self.run["status"] == Status.COMPATIBLE else EXIT_BROKEN
        if self.status == "broken":
            return EXIT_BROKEN if self.evidence == "measured" else EXIT_UNSURE
        if self.status == "platform":  # fails on the CPU it was measured on; on a GPU it was not measured
            return EXIT_BROKEN if self.evidence == "measured" and not self.gpu else EXIT_UNSURE
        if self.status == "compatible" and self.evidence == "measured" and not self.differences and not self.caveats:
            return EXIT_OK
        return EXIT_UNSURE


# --------------------------------------------------------------------------- the pair's facts


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


def cells_of(table: list[envs.Measured], pair: tuple[str, str]) -> list[envs.Measured]:
    return [c for c in table if envs.same("trl", c.trl, pair[0]) and envs.same("transformers", c.transformers, pair[1])]


def _cell_entry(cell: envs.Measured) -> dict[str, Any]:
    return {"trl": cell.trl, "transformers": cell.transformers, "resolution": cell.resolution, "status": cell.status,
            "environment": cell.env, "lock": cell.lock, "install": envs.install_line(cell) if cell.installed else None,
            "install_words": envs.line_words(cell) if cell.installed else None, "resolved": envs.human_line(cell),
            "failure": dict(zip(("stage", "message", "raised_by", "reason"), cell.failure, strict=False))
            if cell.failure else None}


def working_line(table: list[envs.Measured], pair: tuple[str, str]) -> str:
    """The line that reproduces a working cell of ``pair``: today's resolution first."""
    ok = sorted((c for c in cells_of(table, pair) if c.status == Status.COMPATIBLE and c.installed),
                key=lambda c: c.resolution != Resolution.LATEST)
    return envs.install_line(ok[0]) if ok else pip_line(*pair)


def bounds(table: list[envs.Measured], pair: tuple[str, str]) -> list[str]:
    """Say so when a version lies beyond every release the table measured on its axis."""
    out = []
    for axis, version in zip(envs.ROOTS, pair, strict=True):
        try:
            v = Version(version)
            known = sorted({Version(getattr(c, axis)) for c in table})
        except InvalidVersion:
            continue
        if known and v > known[-1]:
            out.append(f"{axis} {version} is newer than every release measured (newest: {known[-1]})")
        elif known and v < known[0]:
            out.append(f"{axis} {version} is older than every release measured (oldest: {known[0]})")
    return out


def check(pair: tuple[str, str], table: list[envs.Measured] | None = None, gpu: str | None = None,
          further: dict[str, str] | None = None) -> CheckReport:
    """The pair's answer from the findings (as measured at ``further`` axes: see ``at_axes``), with the measured
    cell it rests on; ``gpu``: this machine's GPU, on which a failure measured to belong to the CPU platform
    (a ``platform`` fact) was not measured."""
    table = table if table is not None else envs.measured(adapter.findings())
    keyword, broken = adapter.lookup("keyword", pair), adapter.lookup("broken", pair)
    near = adapter.nearest_working(pair)
    values = {p.finding: adapter.lookup(p.finding, pair) for p in registry.findings() if p.finding}
    own = sorted(cells_of(table, pair), key=lambda c: (c.status != Status.COMPATIBLE, c.resolution != Resolution.LATEST))
    common: dict[str, Any] = {
        "trl": pair[0], "transformers": pair[1], "nearest": [{"trl": a, "transformers": b} for a, b in near],
        "pip": working_line(table, near[0]) if near else None, "drift": adapter.lookup("drift", pair),
        "facts": {k: v for k, v in values.items() if v is not None}, "measured_on": measured_on(adapter.findings()),
        "cell": _cell_entry(own[0]) if own else None, "bounds": bounds(table, pair) + _unmeasured_axes(further or {}), "gpu": gpu,
        "axes": dict(further or {})}
    platform = adapter.lookup("platform", pair)
    if platform and not broken:
        return CheckReport(status="platform", platform=platform, evidence=_evidence("platform", pair),
                           adapter_plan=PLATFORM_PLAN, **common)
    if broken:
        return CheckReport(status="broken", broken=broken, evidence=_evidence("broken", pair),
                           adapter_plan="load_kto() raises BrokenPairError with this advice before any heavy work", **common)
    if keyword:
        drifted = [c for c in own if not c.compatible and c.installed]
        if drifted and common["drift"]:
            common["caveats"] = [f"with its dependencies resolved {drifted[0].resolution}, this pair was measured failing at "
                                 f"{common['drift'].get('stage')}: {common['drift'].get('cause') or common['drift'].get('message')}; "
                                 "install the measured environment below"]
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


PLATFORM_PLAN = ("load_kto() does not refuse it (a failure that belongs to the platform is not a broken pair): it "
                 "proceeds as on an unmeasured pair, warning once and picking the keyword the constructors take")


# --------------------------------------------------------------------------- further axes


def at_axes(further: dict[str, str], table: list[envs.Measured]) -> list[envs.Measured]:
    """Answer from the cells measured at ``further`` axes (none: the pair's own cells): the findings the
    adapter consults become that view (no facts where those values were not measured), and the table
    keeps only those cells."""
    data = adapter.findings()
    adapter.FINDINGS = findings_mod.view(data, further) or {**data, "facts": {}, "working": []}
    adapter.findings.cache_clear()
    return [c for c in table if findings_mod.same_axes(dict(c.axes), further)]


def _unmeasured_axes(further: dict[str, str]) -> list[str]:
    """Notes for further axes named at values no cell of the findings measured."""
    if not further or findings_mod.view(adapter.findings(), further) is not None:
        return []
    known = findings_mod.measured_axes(adapter.findings())
    return [f"{name} {v} was not measured" + (f" (measured: {', '.join(sorted(set(known[name]), key=Version))})"
                                              if name in known else " (no cell of these findings has this axis)")
            for name, v in further.items()]


def installed_axes(here: dict[str, list[str]], data: dict[str, Any]) -> dict[str, str]:
    """The installed version of every further axis the findings measured at that very version: the answer
    for this environment rests on those cells. An axis installed at an unmeasured version is left to the
    environment comparison, which names the difference."""
    found = {name: here[name][0] for name in findings_mod.measured_axes(data) if here.get(name)}
    return found if findings_mod.view(data, found) is not None else {}


def rests_on(further: dict[str, str], table: list[envs.Measured], asked: Callable[[envs.Measured], bool]) -> dict[str, str]:
    """``further`` where a cell of the asked pair(s) was measured at those axis values; else none: the pair's own
    cells answer, and the environment comparison names the axis's difference from them."""
    hit = any(asked(c) and findings_mod.same_axes(dict(c.axes), further) for c in table)
    return further if further and hit else {}


# --------------------------------------------------------------------------- against an environment


def _recorded(table: list[envs.Measured]) -> set[str]:
    return {name for c in table for name in c.env}


def against(report: CheckReport, table: list[envs.Measured], yours: dict[str, list[str]], *, complete: bool,
            gpu: str | None = None, store: locks.Store | None = None, runtime: Iterable[str] = ()) -> CheckReport:
    """Hold an environment (``complete``: what is installed) or a file's pins against the pair's measured cells.

    The environment a failing cell measured (no recorded distribution differs, none left open) is broken, with
    that cell's own failure. Otherwise the answer rests on the nearest compatible cell: each distribution of
    its lock (``store``) the stack uses at run time (what the cell recorded importing, and ``runtime``: the
    requirement closure of trl and transformers) that differs is named, the rest of the lock only in
    ``elsewhere``; pins that leave some open are not a plain yes where another resolution of the pair was
    measured failing."""
    against_what = "installed" if complete else "requirements"
    report = replace(report, gpu=gpu or report.gpu)
    own = [c for c in cells_of(table, (report.trl, report.transformers)) if c.installed]
    if not own:
        return replace(report, against=against_what)
    recorded = _recorded(table)
    runtime = set(runtime)
    found = [envs.compare(c, yours, complete=complete, recorded=recorded, pins=store.pins(c.lock) if store else None,
                          runtime=runtime) for c in own]
    for cmp in found:
        cell = cmp.cell
        if not cell.compatible and not cmp.differences and not cmp.unknown and cell.failure:
            stage, message, raised_by = cell.failure[:3]
            near = adapter.nearest_working((cell.trl, cell.transformers))
            if cell.platform:  # the environment measured failing, on its platform: not a broken pair
                return replace(report, against=against_what, status="platform", evidence="measured",
                               cell=_cell_entry(cell), adapter_plan=PLATFORM_PLAN, caveats=[],
                               platform={"stage": stage, "message": message, "raised_by": raised_by,
                                         "reason": cell.platform},
                               pip=working_line(table, near[0]) if near else report.pip)
            return replace(report, against=against_what, status="broken", evidence="measured", cell=_cell_entry(cell),
                           broken={"status": cell.status, "stage": stage, "message": message, "raised_by": raised_by,
                                   "cause": (report.drift or {}).get("cause") if cell.resolution == (report.drift or {}).get("resolution") else None},
                           pip=working_line(table, near[0]) if near else report.pip, caveats=[])
    ok = [c for c in found if c.cell.compatible]
    best = min(ok or found, key=lambda c: (len(c.differences), len(c.unknown), c.cell.resolution != Resolution.LATEST))
    diffs = list(best.differences)
    platform = envs.device_difference(str(adapter.findings().get("generated_from", {}).get("devices", "")), gpu)
    diffs += [platform] if platform else []
    caveats = [] if best.unknown else [c for c in report.caveats if not best.cell.compatible]
    failing = [c for c in found if not c.cell.compatible and not c.differences]
    if best.unknown and failing:
        f = failing[0].cell
        caveats = [f"{', '.join(best.unknown)} {'is' if len(best.unknown) == 1 else 'are'} left open, and resolved "
                   f"{f.resolution} this pair was measured failing at {f.failure[0] if f.failure else '?'}: "
                   f"{f.failure[1] if f.failure else ''}"]
    report = replace(report, against=against_what, cell=_cell_entry(best.cell), caveats=caveats,
                     differences=[asdict(d) | {"words": d.words()} for d in diffs], unpinned=list(best.unknown),
                     elsewhere=[asdict(d) | {"words": d.words()} for d in best.elsewhere])
    if report.status == "drift" and best.cell.compatible and not diffs and not caveats:
        return replace(report, status="compatible", evidence="measured",
                       keyword=adapter.lookup("keyword", (best.cell.trl, best.cell.transformers)))
    return report


# --------------------------------------------------------------------------- --run


def run_here(trl: str, transformers: str) -> dict[str, Any]:
    """The cell suite in this very Python, installing nothing: its folded verdict and root cause."""
    import os

    from compat.contract import result_from_observations
    from compat.harness import suite

    root = suite.checkout()
    try:
        import importlib.util

        if importlib.util.find_spec("pytest") is None:
            raise ImportError
    except ImportError:
        raise cfg.ConfigError(f"--run runs the cell suite with pytest, which is not installed in {sys.executable} "
                              "(pip install pytest, or kto-compat[run])") from None
    with tempfile.TemporaryDirectory(prefix="kto-compat-check-") as tmp:
        work = Path(tmp)
        log_path = work / "suite.log"
        with open(log_path, "w", encoding="utf-8") as log:
            ran = suite.run(root, Path(sys.executable).parent.parent, DEFAULT_TRAINER, work, log, timeout=900,
                            threads=os.cpu_count() or 1, should_stop=lambda: False, python=sys.executable)
        if ran.observations is None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            raise cfg.ConfigError("--run: the cell suite recorded nothing (exit "
                                  f"{ran.returncode}): {' | '.join(tail)[:300]}")
    result = result_from_observations(Version(trl), Version(transformers), "here", ran.observations)
    f = result.failure
    return {"status": str(result.status), "seconds": round(ran.seconds, 1),
            "stage": str(f.stage) if f else None, "message": f.message if f else None,
            "raised_by": f.raised_by if f else None, "keyword": result.use_keyword(),
            "steps": (result.training or {}).get("steps"), "device": (result.training or {}).get("device"),
            "adapter": result.adapter, "failed_tests": [t.id for t in (result.tests.failed if result.tests else ())]}


# --------------------------------------------------------------------------- rendering


def _pair_name(r: CheckReport) -> str:
    return axes.named({"trl": r.trl, "transformers": r.transformers, **r.axes})


def render(r: CheckReport, verbose: bool = False) -> str:
    head = _pair_name(r) + ": "
    how = {"measured": "measured", "inferred": "inferred (not itself measured; inside a measured range)"}.get(r.evidence, "")
    lines: list[str] = []
    if r.run is not None:
        run = r.run
        if run["status"] == Status.COMPATIBLE:
            lines.append(head + f"--run PASSED here in {run['seconds']} s: imported, built with {run['keyword']}=, "
                         f"{run['steps']} BF16 steps on {run['device']}, the adapter trained. Trust this over the table.")
        else:
            lines.append(head + f"--run FAILED here ({run['status']}) at the '{run['stage']}' stage: {run['message']}")
            if run.get("raised_by"):
                lines.append(f"raised by: {run['raised_by']}")
            if run.get("failed_tests"):
                lines.append("failed cell tests: " + ", ".join(run["failed_tests"][:5]))
        lines.append(f"the table says: {r.status}" + (f" ({r.evidence})" if r.evidence != "none" else ""))
    elif r.status == "compatible":
        if r.differences:
            what = "your environment differs" if r.against == "installed" else "your pins differ"
            lines.append(head + f"compatible only as measured: {what} from the measured environment where that can "
                         "change the verdict" + (" (`kto-compat check --run` measures yours)." if r.against == "installed" else "."))
        elif r.caveats:
            lines.append(head + f"{how} compatible in the measured environment, but not a plain yes:")
        else:
            lines.append(head + f"{how} compatible. Hand the tokenizer to KTOTrainer as {r.keyword}=.")
        lines += [f"  {c}" for c in r.caveats]
        lines.append(f"KTOConfig/KTOTrainer import from: {r.facts.get('import_path')}; hand the tokenizer over as {r.keyword}=")
    elif r.status == "broken":
        b = r.broken or {}
        lines.append(head + f"{how} BROKEN ({b.get('status')}): fails at the '{b.get('stage')}' stage.")
        lines.append(f"error: {plain(b.get('message'))}" + (f" (raised by {plain(b['raised_by'])})" if b.get("raised_by") else ""))
        if b.get("cause"):
            lines.append(f"cause: {plain(b['cause'])}")
    elif r.status == "platform":
        p = r.platform or {}
        if r.gpu:
            lines.append(head + f"NOT MEASURED on this machine ({r.gpu}): every cell of it ran on CPU, where it fails "
                         f"at the '{p.get('stage')}' stage for a reason of the platform, not of the pair: "
                         f"{plain(p.get('reason'))}.")
        else:
            lines.append(head + f"{how} to FAIL ON THIS PLATFORM (CPU) at the '{p.get('stage')}' stage: "
                         f"{plain(p.get('reason'))}. Not broken as a pair: measured with that changed, the "
                         "failure moved; on a GPU it was not measured.")
        raised_by = p.get("raised_by") or ((r.cell or {}).get("failure") or {}).get("raised_by")
        lines.append(f"error on CPU: {plain(p.get('message'))}" + (f" (raised by {plain(raised_by)})" if raised_by else ""))
    elif r.status == "drift":
        d = r.drift or {}
        lines.append(head + f"{how} to fail with today's dependency resolution, at {d.get('stage')}: "
                     f"{plain(d.get('cause') or d.get('message'))} (dependency drift, not a fault of the pair).")
        lines.append(f"error: {plain(d.get('message'))}")
        lines.append(f"measured to work: {d['remedy']}" if d.get("remedy") else "no resolution of it was measured to work")
    else:
        lines.append(head + "not measured by this kto-compat's findings.")
    lines += [f"note: {b}" for b in r.bounds]
    lines += _environment_lines(r, verbose)
    if r.nearest and r.status in ("broken", "platform", "unmeasured", "drift") and (r.run is None or r.run["status"] != Status.COMPATIBLE):
        lines.append("nearest measured working pairs: " + "; ".join(f"trl {p['trl']} + transformers {p['transformers']}" for p in r.nearest))
        lines.append(f"to reproduce the nearest one: {r.pip}")
    if r.drift and r.status not in ("drift",) and r.run is None and not r.caveats:
        lines.append(f"note: with today's dependency resolution this pair fails at {r.drift.get('stage')}: "
                     f"{plain(r.drift.get('cause') or r.drift.get('message'))}"
                     + (f". Measured to work: {r.drift['remedy']}" if r.drift.get("remedy") else ""))
    lines.append(f"adapter: {r.adapter_plan}")
    if r.status != "unmeasured":
        lines.append(f"measured on: {r.measured_on}")
    lines.append(f"exit {r.exit_code}")
    return "\n".join(lines)


def _environment_lines(r: CheckReport, verbose: bool = False) -> list[str]:
    c = r.cell
    if c is None:
        return []
    lines = []
    if r.against != "pair":
        what = "your environment matches" if r.against == "installed" else "your pins match"
        scope = "every distribution the stack uses at run time" if c.get("lock") else "every distribution it recorded"
        lines.append(f"compared with the measured cell ({c['resolution']} resolution, {c['status']}"
                     + (f", lock {c['lock']}" if c.get("lock") else "") + "):"
                     + ("" if r.differences or r.unpinned else f" {what} {scope}"))
        lines += [f"  {d['words']}" for d in r.differences]
        if r.unpinned:
            lines.append(f"  left open, resolved when you install: {', '.join(r.unpinned)}")
        if r.elsewhere and verbose:
            lines.append("elsewhere in the lock (the stack does not use these at run time):")
            lines += [f"  {d['words']}" for d in r.elsewhere]
        elif r.elsewhere:
            lines.append(f"  and {len(r.elsewhere)} difference(s) elsewhere in the lock, outside what the stack uses "
                         "at run time (--verbose lists them)")
    if c.get("install") and (c["status"] == Status.COMPATIBLE or r.against != "pair"):
        label = "reproduces the measured environment" if c["status"] == Status.COMPATIBLE else "reproduces the failure"
        lines.append(f"install line ({label}; {c['install_words']}): {c['install']}")
        if c.get("resolved"):
            lines.append(f"  how it resolved (uv's cutoff at the pair's release; the lock above is what it installed): "
                         f"{c['resolved']}")
    return lines


# --------------------------------------------------------------------------- command


def _findings(path: Path | None) -> locks.Store:
    """Load the findings the answers come from; their cells' locks lie beside them (locks/<id>.txt)."""
    path = path or PACKAGE_FINDINGS
    try:
        data = findings_mod.load(path)
    except ContractError as exc:
        raise cfg.ConfigError(str(exc)) from None
    adapter.FINDINGS = data
    adapter.findings.cache_clear()
    return locks.Store(path.parent)


def installed() -> tuple[str, str]:
    from importlib import metadata

    try:
        versions = metadata.version("trl"), metadata.version("transformers")
    except metadata.PackageNotFoundError as exc:
        raise cfg.ConfigError(f"{exc.name} is not installed in this Python; install the pair to check it, or pass "
                              "--pair trl==A,transformers==B or --requirements FILE") from None
    for name, version in zip(envs.ROOTS, versions, strict=True):
        try:
            Version(version)
        except InvalidVersion:
            raise cfg.ConfigError(f"the installed {name} has version {plain(version)[:80]!r}, which is not a PEP 440 "
                                  "version; pass --pair trl==A,transformers==B") from None
    return versions


class Unanswered(CompatError):
    """A file whose pins name no pair the table can answer for: said in one line, exit 3 (not bad input),
    by cmd_check; a kto-compat error like every other, should it ever reach main (exit 2)."""


def _candidates(pin: reqfile.Pin | None, axis: str, table: list[envs.Measured], path: Path) -> list[str]:
    """The versions a pin admits: its exact version, or each measured release inside its range."""
    if pin is None:
        raise Unanswered(f"{path} has no requirement on {axis}: which {axis} gets installed decides the answer; "
                         f"pin it, or ask with --pair")
    if pin.exact:
        return [pin.exact]
    known = sorted({Version(getattr(c, axis)) for c in table})
    inside = [str(v) for v in known if pin.admits(v)]
    if not inside:
        raise Unanswered(f"{pin.where}: {axis} {pin.words()} admits no release kto-compat measured "
                         f"(measured: {known[0]} to {known[-1]})" if known else f"{pin.where}: nothing was measured")
    return inside


LIST_LIMIT = 12  # more pairs than this are answered one line each


def _pairs(pins: dict[str, reqfile.Pin], table: list[envs.Measured], path: Path) -> list[tuple[str, str]]:
    trls = _candidates(pins.get("trl"), "trl", table, path)
    tfs = _candidates(pins.get("transformers"), "transformers", table, path)
    pairs = [(a, b) for a in trls for b in tfs]
    if len(pairs) == 1:
        return pairs
    # A range: the pairs a cell installed; a pair the resolver refuses can never be what gets installed.
    installed_pairs = [p for p in pairs if any(c.installed for c in cells_of(table, p))]
    if not installed_pairs:
        raise Unanswered(f"{path}: the measured pairs its ranges admit ({len(pairs)}) all failed to resolve or were "
                         "not measured")
    return installed_pairs


def reports_for(args: argparse.Namespace) -> list[CheckReport]:
    store = _findings(args.findings)
    table = envs.measured(adapter.findings())
    gpu = envs.local_gpu()
    if args.requirements is not None:
        pins = reqfile.read(args.requirements)
        yours = {name: list(pin.exacts) for name, pin in pins.items() if pin.exacts}
        # Like an installed environment: a further axis pinned at a measured value is answered from its cells.
        further = rests_on(installed_axes(yours, adapter.findings()), table,
                           lambda c: all(p in pins and pins[p].admits(Version(getattr(c, p))) for p in axes.DEFAULT))
        table = at_axes(further, table)
        return [against(check(p, table, gpu, further), table, yours, complete=False, store=store)
                for p in _pairs(pins, table, args.requirements)]
    if args.pair:
        asked = parse_pins(args.pair)
        further = {name: str(v) for name, v in asked.items() if name not in axes.DEFAULT}
        return [check((str(asked["trl"]), str(asked["transformers"])), at_axes(further, table), gpu, further)]
    here, pair = envs.here(), installed()
    further = rests_on(installed_axes(here, adapter.findings()), table, lambda c: bool(cells_of([c], pair)))
    table = at_axes(further, table)
    report = against(check(pair, table, gpu, further), table, here, complete=True, gpu=gpu, store=store,
                     runtime=envs.reach())
    if args.run:
        report = replace(report, run=run_here(report.trl, report.transformers))
    return [report]


def _one_line(r: CheckReport) -> str:
    words = {EXIT_OK: "compatible", EXIT_BROKEN: "BROKEN" if r.status != "platform" else "FAILS ON CPU",
             EXIT_UNSURE: "not a plain yes"}[r.exit_code]
    if r.status == "platform":
        why = f"fails on CPU at {(r.platform or {}).get('stage')}: platform-bound" + ("; not measured on a GPU" if r.gpu else "")
    elif r.exit_code == EXIT_BROKEN:
        why = f"fails at {(r.broken or {}).get('stage')}"
    elif r.differences:
        why = "differs: " + ", ".join(d["name"] for d in r.differences)
    elif r.caveats:
        why = "another resolution of it was measured failing" + (f"; {len(r.unpinned)} left open" if r.unpinned else "")
    else:
        why = r.status
    why = why if r.exit_code != EXIT_OK else f"use {r.keyword}="
    return f"  {_pair_name(r)}: {words} ({why}), exit {r.exit_code}"


def cmd_check(args: argparse.Namespace) -> int:
    """The environment's measured status; see the exit codes in --help."""
    if args.run and (args.pair or args.requirements):
        raise cfg.ConfigError("--run measures the environment installed here; it takes neither --pair nor --requirements")
    try:
        reports = reports_for(args)
    except Unanswered as exc:
        if args.json:
            print(json.dumps({"unanswered": str(exc), "exit_code": EXIT_UNSURE}, indent=2))
        else:
            print(f"{plain(str(exc))}\nexit {EXIT_UNSURE}")
        return EXIT_UNSURE
    code = max((r.exit_code for r in reports), key=lambda c: {EXIT_OK: 0, EXIT_UNSURE: 1, EXIT_BROKEN: 2}[c])
    if args.json:
        body = [{**asdict(r), "exit_code": r.exit_code} for r in reports]
        print(json.dumps(body[0] if len(body) == 1 and args.requirements is None else
                         {"pairs": body, "exit_code": code}, indent=2, sort_keys=True))
    elif len(reports) > LIST_LIMIT:
        print(f"{args.requirements} admits {len(reports)} measured pairs; one line each (--json has everything):")
        print(plain("\n".join(_one_line(r) for r in reports)))
        print(f"exit {code}")
    else:
        if len(reports) > 1:
            print(f"{args.requirements} admits {len(reports)} measured pairs; each is answered:\n")
        # Findings text goes to a terminal, which would obey escapes in it; JSON escapes them itself.
        print(plain("\n\n".join(render(r, args.verbose) for r in reports)))
    return code


def register(sub: argparse._SubParsersAction) -> None:
    ck = sub.add_parser("check", formatter_class=options.HelpWithEpilog, epilog=EXIT_HELP,
                        help="measured status of the installed environment, a pair, or a requirements file "
                             "(exit 0 compatible, 1 broken, 3 not measured or differing, 2 bad input)")
    ck.add_argument("--json", action="store_true", help="machine-readable output (errors too)")
    ck.add_argument("--findings", type=Path, default=None, metavar="FILE",
                    help="findings file, its cells' locks in locks/ beside it (default: the package's compat/findings.json)")
    ck.add_argument("-v", "--verbose", action="store_true",
                    help="also list differences from the cell's lock outside what the stack uses at run time "
                         "(tzdata, urllib3, ...); they never change the exit code")
    what = ck.add_mutually_exclusive_group()
    what.add_argument("--pair", default=None, metavar="PAIR", help="check trl==A,transformers==B instead of the installed pair")
    what.add_argument("--requirements", type=Path, default=None, metavar="FILE",
                      help="check the pins of a requirements file (pip format), pyproject.toml, uv.lock, poetry.lock, "
                           "pdm.lock or pylock.toml; installs nothing, needs no network")
    ck.add_argument("--run", action="store_true",
                    help="also run the cell's checks (import, both keywords, 3 BF16 steps, the adapter's rows) in this "
                         "Python, installing nothing; needs pytest and a kto-compat checkout's tests/cell")
    ck.set_defaults(func=cmd_check)

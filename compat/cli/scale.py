"""`bisect` (the first release where a probe changes, in O(log n) cells) and `bench` (speed, as ratios)."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from compat.cli import options
from compat.contract import DEFAULT_TRAINER, CellResult, Resolution
from compat.harness import axes, documents, index, lock, locks, plan, run
from compat.harness import bench as bench_mod
from compat.harness import bisect as bisect_mod
from compat.harness import config as cfg
from compat.harness.reports import publish as reports

# ---- bisect --------------------------------------------------------------------------------


class _StepReporter(run.Reporter):
    """One line per measured cell; the total is unknown up front, so no [k/n]."""

    cached = 0

    def finished(self, cell, result, cached):
        with self._lock:
            self.done += 1
            self.cached += cached
        how = "cached" if cached else f"{result.seconds:.1f}s"
        self._line(f"bisect cell {self.done}: {cell.id}: {result.status} ({how})")


def _values(raw: list[str], flag: str, probe: str) -> frozenset[str]:
    """--good/--bad values, checked against what the probe can take."""
    values = frozenset(v.strip() for item in raw for v in item.split(",") if v.strip())
    allowed = _allowed(probe)
    bad = sorted(v for v in values if allowed and v not in allowed)
    if bad:
        raise cfg.ConfigError(f"{flag} {bad[0]!r}: not a value of {probe} ({', '.join(sorted(allowed))})")
    return values


def _allowed(probe: str) -> frozenset[str]:
    from compat import probes as registry
    from compat.contract import Status

    if probe == "status":
        return frozenset(s.value for s in Status)
    return frozenset(registry.by_key(probe).values)


def _axis_versions(lister, axis: str, spec: str) -> list[Version]:
    try:
        wanted = SpecifierSet(spec)
    except InvalidSpecifier:
        raise cfg.ConfigError(f"--range {spec!r}: invalid version specifier") from None
    versions = sorted(r.version for r in lister(axis) if not r.yanked and not r.version.is_prerelease
                      and r.version in wanted)
    if len(versions) < 2:
        raise cfg.ConfigError(f"--range {spec!r}: {len(versions)} {axis} release(s) on the index; need at least 2")
    return versions


def _evidence(p: bisect_mod.Point, probe: str) -> str:
    r = p.result
    parts = [f"{probe}={p.value if p.value is not None else 'unmeasured'}", f"status={r.status}"]
    if probe.startswith("keyword.") and r.keyword_raised_by.get(probe.split(".", 1)[1]):
        parts.append(f"rejected by {r.keyword_raised_by[probe.split('.', 1)[1]]}")
    if r.failure:
        parts.append(f"{r.failure.stage}: {(r.failure.message or '').splitlines()[0][:200] if r.failure.message else ''}")
    return f"{r.id}: " + "; ".join(parts)


def render_outcome(o: bisect_mod.Outcome, axis: str, probe: str, total: int, cached: int = 0) -> str:
    lines: list[str] = []
    if o.kind == "found" and o.before and o.after:
        where = f"{axis} {o.after.version}"
        if o.between:
            lines.append(f"boundary: {probe} changes from {o.before.value!r} to {o.after.value!r} at one of "
                         f"{axis} {', '.join(map(str, o.between))}, {o.after.version} (those between could not be measured)")
        else:
            lines.append(f"boundary: {where} is the first release where {probe} is {o.after.value!r} "
                         f"(was {o.before.value!r} up to {axis} {o.before.version})")
        lines += [f"  before: {_evidence(o.before, probe)}", f"  after:  {_evidence(o.after, probe)}"]
    elif o.kind == "no-change" and o.before and o.after:
        lines.append(f"no boundary: {probe} is {o.before.value!r} at both ends ({axis} {o.before.version} and "
                     f"{o.after.version}); bisect assumes one monotonic change, so a value that changes and changes "
                     f"back in between is not searched (use --linear to see every release)")
        lines += [f"  low:  {_evidence(o.before, probe)}", f"  high: {_evidence(o.after, probe)}"]
    elif o.kind == "already-changed" and o.after:
        lines.append(f"no boundary in range: {probe} is already {o.after.value!r} at the lowest measurable "
                     f"release ({axis} {o.after.version}); widen --range downwards")
        lines.append(f"  low:  {_evidence(o.after, probe)}")
    else:
        lines.append(f"no boundary: {probe} could not be measured at either end of the range; narrow --range")
    low = o.before or o.after
    below = [p.version for p in o.skipped if low and p.version < low.version]
    if low and below and o.kind in ("no-change", "already-changed"):
        lines.append(f"note: {axis} releases below {low.version} could not be measured (skipped block from "
                     f"{min(below)}), so a change inside that block cannot be seen from here")
    if o.skipped:
        lines.append("skipped (probe unmeasurable, like `git bisect skip`):")
        lines += [f"  {_evidence(p, probe)}" for p in o.skipped]
    lines.append(f"cells measured: {o.runs} of {total} releases ({o.runs - cached} run, {cached} from the result cache; "
                 f"a plain bisection needs at most {2 + math.ceil(math.log2(max(total - 1, 1)))})")
    return "\n".join(lines)


def _write_into(out: Path, done: list[CellResult], meta: dict, state: Path) -> None:
    """The measured cells merged into the report already in ``out`` (as matrix does), never replacing it:
    every cell it held stays, a harness error never replaces a verdict, and its label is kept."""
    from compat.harness.merge import merge_cells

    before = documents.load_results(out / "compat.json", missing_ok=True)
    merged = merge_cells([documents.Source(out, tuple(done), {})], before if before.cells else None)
    if before.cells:
        meta = {**before.meta, **{k: v for k, v in meta.items() if k != "profile"}}
    documents.write_cells(out, merged)  # cells/ mirrors the report
    locks.carry([out, state], out, merged)  # state: the .compat/ whose locks/ keeps those of cached cells
    reports.write(out, merged, meta)


def _fixed(text: str, axis: str) -> dict[str, Version]:
    """``--fixed``: every axis but the one searched, held at one version (trl and transformers at least)."""
    wanted = ",".join(f"{name}==VERSION" for name in axes.DEFAULT if name != axis)
    try:
        sel = plan.parse_only(text, "--fixed")
    except cfg.ConfigError as exc:
        if "is not a version" in str(exc):
            raise
        raise cfg.ConfigError(f"--fixed {text!r}: expected {wanted}") from None
    fixed = sel.all_axes
    if axis in fixed or any(name not in fixed for name in axes.DEFAULT if name != axis) or sel.resolution or sel.trainer:
        raise cfg.ConfigError(f"--fixed {text!r}: expected {wanted} (every axis but --axis {axis})")
    return fixed


def cmd_bisect(args: argparse.Namespace) -> int:
    axis = axes.canonical(args.axis)
    if axis is None:
        raise cfg.ConfigError(f"--axis {args.axis!r}: not a distribution name (trl, transformers, datasets, ...)")
    fixed = _fixed(args.fixed, axis)
    if args.probe not in bisect_mod.PROBES:
        raise cfg.ConfigError(f"--probe {args.probe!r}: one of {', '.join(bisect_mod.PROBES)}")
    good, bad = _values(args.good, "--good", args.probe), _values(args.bad, "--bad", args.probe)
    if good & bad:
        raise cfg.ConfigError(f"--good and --bad share {sorted(good & bad)[0]!r}: a value cannot be on both sides")
    config = cfg.load(args.config)
    lister = index.lister(args.config)
    versions = _axis_versions(lister, axis, args.range)
    side = bisect_mod.Side(good, bad)
    out = args.out.resolve()
    ctx = run.project_context(args.config, config.settings, out, fresh=args.fresh)
    reporter = _StepReporter(len(versions))
    done: list[CellResult] = []

    def measure(v: Version) -> bisect_mod.Point:
        pins = {name: fixed.get(name, v) for name in (*axes.DEFAULT, *fixed, axis)}  # trl, transformers, the rest
        spec = ",".join(f"{name}=={version}" for name, version in pins.items())
        cells = plan.plan(config, args.profile, lister, [f"{spec},resolution={args.resolution},trainer={args.trainer}"])
        results = run.run_all(ctx, cells[:1], 1, reporter)
        if not results:  # interrupted before the cell started
            raise KeyboardInterrupt
        result = results[0]
        done.append(result)
        return bisect_mod.Point(v, bisect_mod.probe_value(result, args.probe), result)

    held = ",".join(f"{name}=={version}" for name, version in fixed.items())
    print(f"compat: bisect {args.probe} along {axis} ({len(versions)} releases {versions[0]}..{versions[-1]}) "
          f"with {held}", file=sys.stderr)
    with lock.exclusive(out), run.stop_on_signals(ctx.stop):
        try:
            if args.linear:
                points, first = bisect_mod.scan(versions, measure, side)
                text = "\n".join(f"{p.version}: {_evidence(p, args.probe)}" for p in points)
                text += f"\nfirst release past the boundary: {first.version if first else 'none'} ({len(points)} cells)"
                steps = bisect_mod.changes(points)
                text += "".join(f"\nchange: {a.version} {a.value!r} -> {b.version} {b.value!r}" for a, b in steps)
                if len(steps) > 1:
                    text += f"\nnot monotonic: {len(steps)} changes; bisection assumes one, use --range/--good/--bad to pick one"
            else:
                outcome = bisect_mod.search(versions, measure, side)
                text = render_outcome(outcome, axis, args.probe, len(versions), reporter.cached)
        except KeyboardInterrupt:
            print("compat: bisect interrupted; measured cells are cached, rerun to resume", file=sys.stderr)
            return 130
        finally:
            if done:
                _write_into(out, done, {"profile": f"bisect {args.probe} along {axis}", "python": config.settings.python,
                                        "torch": config.settings.torch, "suite": ctx.suite, "platform": platform.platform()},
                            cfg.state_dir(args.config))
    print(text)
    return 0


# ---- bench ---------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    """Side by side in one run: the cell over its floor (warm, cold), uv vs pip setup, cached vs cold matrix."""
    import tempfile

    from compat.harness import floor

    config = cfg.load(args.config)
    cell = plan.plan(config, "default", index.lister(args.config), [args.pair])[0]
    only = args.only or [args.pair]
    root = cfg.state_dir(args.config)
    try:
        with tempfile.TemporaryDirectory(prefix="compat-bench-") as tmp:
            cells = floor.measure(args.pair, root / "envs", root / "bytecode", Path(tmp) / "cell",
                                  floor.run_cell_cli(args.config), runs=args.runs, empty_store=not args.keep_store,
                                  threads=max(1, (os.cpu_count() or 1) // options.default_jobs()))  # as matrix runs it
        figures = bench_mod.bench(cell, config.settings, args.config, only)
    except bench_mod.BenchError as exc:
        print(f"compat: bench failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"cell": cells.detail(), **figures.detail()}, indent=2, sort_keys=True))
        return 0
    print(f"bench {cell.only}")
    print("\n".join(cells.render()))
    print("\n".join(figures.render().splitlines()[1:]))
    return 0


# ---- parser --------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    fmt = options.Help
    bs = sub.add_parser("bisect", formatter_class=fmt, help="first release along one axis where a probe changes")
    bs.add_argument("--axis", required=True, metavar="NAME",
                    help="the axis to search along: trl, transformers or any distribution (datasets, torch, ...)")
    bs.add_argument("--fixed", required=True, metavar="NAME==VERSION[,...]",
                    help="the other axes, held fixed (trl and transformers at least)")
    bs.add_argument("--probe", required=True, choices=bisect_mod.PROBES, help="what to watch change")
    bs.add_argument("--range", default="", metavar="SPEC", help="releases of --axis to search (default: all)")
    bs.add_argument("--good", action="append", default=[], metavar="V[,V]", help="values before the boundary")
    bs.add_argument("--bad", action="append", default=[], metavar="V[,V]", help="values after the boundary")
    bs.add_argument("--resolution", default=Resolution.LATEST, choices=[str(r) for r in cfg.RESOLUTIONS], help="how the cells resolve")
    bs.add_argument("--trainer", default=DEFAULT_TRAINER, help="which trainer's cells")
    bs.add_argument("--linear", action="store_true", help="measure every release instead of bisecting")
    bs.add_argument("--fresh", action="store_true", help="ignore cached results")
    options.matrix_file(bs)
    bs.add_argument("--profile", default="default", help=argparse.SUPPRESS)
    bs.add_argument("--out", type=Path, default=Path("reports/bisect"), metavar="DIR", help="where the measured cells go")
    bs.set_defaults(func=cmd_bisect)

    bn = sub.add_parser("bench", formatter_class=fmt,
                        help="speed as ratios: a cell over its floor (warm and cold), uv vs pip, cached vs cold")
    bn.add_argument("--pair", default="trl==0.12.2,transformers==4.46.3", metavar="PAIR", help="the cell to measure")
    bn.add_argument("--only", action="append", default=[], metavar="PAIR",
                    help="cells of the cached-vs-cold part (default: --pair)")
    bn.add_argument("--runs", type=options.positive_int, default=3, help="repeats of each cell timing (medians)")
    bn.add_argument("--json", action="store_true", help="every round's seconds and ratios as JSON instead of one line per ratio")
    bn.add_argument("--keep-store", action="store_true",
                    help="skip the cold cell with an empty bytecode store (the slowest figure)")
    options.matrix_file(bn)
    bn.set_defaults(func=cmd_bench)

"""`kto-compat platform`: mark the failures that move with a platform fact (``failure.platform``), by
measuring each candidate cell once more with the fact changed (compat/harness/platform.py)."""

from __future__ import annotations

import argparse
import sys

from packaging.requirements import InvalidRequirement, Requirement

from compat.cli import options
from compat.contract import CellResult, Status
from compat.harness import config as cfg
from compat.harness import documents, lock, plan, run
from compat.harness import platform as bound
from compat.harness.reports import publish as reports


def pinned(text: str | None, fact: bound.Fact) -> str | None:
    """``--with triton==3.7.1``: the release to install instead of the one PyPI's torch requires."""
    if text is None:
        return None
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise cfg.ConfigError(f"--with {text!r}: not a requirement: {exc}") from None
    exact = [s.version for s in req.specifier if s.operator == "=="]
    if req.name.lower() != fact.distribution or len(exact) != 1:
        raise cfg.ConfigError(f"--with {text!r}: expected {fact.distribution}==VERSION")
    return exact[0]


def selected(cells: list[CellResult], only: list[str]) -> list[CellResult]:
    wanted = [plan.parse_only(text) for text in only]
    return [c for c in cells if not wanted or any(w.matches(c) for w in wanted)]  # type: ignore[arg-type]


def cmd_platform(args: argparse.Namespace) -> int:
    fact = bound.TRITON
    source = documents.load_results(args.results)
    results = options.writable(args.results, "--results")
    todo = [c for c in selected(list(source.cells), args.only) if bound.eligible(c, fact)]
    config = cfg.load(args.config)
    ctx = run.project_context(args.config, config.settings, cfg.state_dir(args.config) / "platform", jobs=args.jobs)
    torch = next((c.environment["torch"] for c in todo if c.environment.get("torch")), config.settings.torch)
    version = pinned(args.with_, fact) or (bound.required_version(ctx.envs, fact.distribution, torch) if todo else "")
    print(f"compat: platform: {len(todo)} cell(s) failed building or training with {fact.probe} = {fact.off}"
          + (f"; candidates are measured again with {fact.distribution} {version}" if todo else ""), file=sys.stderr)
    lookup = bound.RaiserLookup([ctx.envs.root, bound.changed_context(ctx, fact, version, ()).envs.root])

    def mentioned(cell: CellResult) -> bool | None:
        said = lookup(cell, fact.distribution)
        kept = ctx.envs.known_pins(bound.plan_cell(cell)) if said is None else None
        if kept is not None:  # the cell's own environment, synced again from its pins: seconds, no suite run
            with lock.shared_env(ctx.envs.root / bound.plan_cell(cell).env_id):
                step, env, _ = ctx.envs.ensure(bound.plan_cell(cell), kept)
            said = lookup(cell, fact.distribution, bound.site_packages(env)) if step.ok else None
        return said

    def measure(cell: CellResult) -> CellResult:
        kept = ctx.envs.known_pins(bound.plan_cell(cell))
        pins = bound.lock_pins(cell, (results, cfg.state_dir(args.config)), kept)
        changed = bound.changed_context(ctx, fact, version, pins)
        return run.run_cell(changed, bound.plan_cell(cell))

    with run.stop_on_signals(ctx.stop):
        outcomes = bound.remeasure(todo, fact, version, mentioned, measure, args.jobs)
        for o in outcomes:
            print(f"compat: platform: {o.cell.id}: {o.why}", file=sys.stderr)
        changed = {o.cell.id: o for c, o in zip(todo, outcomes, strict=True) if o.cell != c}
        if changed:
            cells = bound.merged(list(source.cells), changed)
            with lock.exclusive(results):
                documents.write_cells(results, [o.cell for o in changed.values()])
                reports.write(results, cells, source.meta)
    marked = sum(bool(o.cell.failure and o.cell.failure.platform) for o in outcomes)
    print(f"compat: platform: {marked} of {len(todo)} cell(s) platform-bound; {len(changed)} changed in {results}",
          file=sys.stderr)
    return 1 if any(o.rerun is not None and o.rerun.status == Status.ERROR for o in outcomes) else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("platform", formatter_class=options.Help,
                       help="measure failed cells again with a platform fact changed; mark those whose failure moves",
                       description="For each cell that failed building or training with triton not importable, where "
                                   "the module that raised names triton, measure the cell once more in its own pins "
                                   "plus the triton PyPI's torch of that release requires. Where the failure moves "
                                   "(another stage or error, or it trains), set failure.platform to the measured "
                                   "reason; where it reproduces, clear it. A rerun that errs changes nothing, and no "
                                   "rerun is cached. Needs a checkout and uv.")
    options.results_dir(p, what="measured results to mark")
    options.matrix_file(p)
    p.add_argument("--only", action="append", default=[], metavar="PAIR", help=options.ONLY_HELP)
    p.add_argument("-j", "--jobs", type=options.positive_int, default=1, help="cells measured at once")
    p.add_argument("--with", dest="with_", default=None, metavar="REQ",
                   help="install this triton (triton==VERSION) instead of the one PyPI's torch requires")
    p.set_defaults(func=cmd_platform)

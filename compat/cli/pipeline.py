"""`matrix` and `list`: plan the cells, run them, write the reports."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from compat.cli import options
from compat.contract import CellResult, Status
from compat.harness import documents, lock, plan, progress, run
from compat.harness.documents import Source
from compat.harness.merge import measured_dates, merge_cells
from compat.harness.reports import publish as reports


def hardware(results: Sequence[CellResult]) -> str:
    """What the verdicts were measured on: the GPU where a cell trained on CUDA, else this machine's CPU."""
    gpus = sorted({str(r.training.get("gpu") or "GPU") for r in results if r.training and r.training.get("device") == "cuda"})
    cpu = f"cpu ({platform.machine()}, {os.cpu_count()} cores, BF16 as CPU autocast)"
    return f"cuda ({', '.join(gpus)})" + (f" and {cpu}" if len(gpus) < len(results) else "") if gpus else cpu


def cmd_matrix(args: argparse.Namespace) -> int:
    config, cells = options.planned(args)
    out = options.writable(args.out)
    jobs = args.jobs or options.default_jobs()
    with lock.exclusive(out):
        # The report already there: the verdicts a new run is checked against and merged into.
        previous = documents.load_results(out / "compat.json", missing_ok=True)
        before, before_meta = list(previous.cells), previous.meta
        ctx = run.project_context(args.config, config.settings, out, fresh=args.fresh, jobs=jobs,
                                  previous={c.id: c for c in before})
        with run.stop_on_signals(ctx.stop):
            reporter = progress.make(len(cells), jobs)
            print(f"compat: {len(cells)} cells, {jobs} at a time -> {out}", file=sys.stderr)
            results = run.run_all(ctx, cells, jobs, reporter)
            # A sharded run skips the twins another shard runs anyway: each cell is measured in one shard.
            twins = plan.drift_followups(results, cells, options.planned(args, whole=True)[1] if args.shard else ())
            if twins and not ctx.stop.is_set():
                print(f"compat: {len(twins)} cells not compatible by dependency drift: measuring each pair again with its "
                      "dependencies as of its release", file=sys.stderr)
                reporter.total += len(twins)
                results += run.run_all(ctx, twins, jobs, reporter)
            reporter.close()
            # Still under the handlers: a Ctrl-C while the reports are written waits for the set to land.
            # A partial run (a subset, a shard, an interrupt) merges into the fuller report already there;
            # a harness error never replaces a verdict measured before.
            stamp = reports.now()
            run_source = Source(out, tuple(results), {"generated": stamp})
            base = Source(out, tuple(before), before_meta) if before else None
            merged = merge_cells([run_source], base)
            kept = len(merged) - len(results)
            subset = bool(args.only or args.shard or kept)
            dates = measured_dates([run_source], base, merged)  # a cell served unchanged keeps its date
            meta = {**before_meta, "profile": before_meta.get("profile", args.profile) if subset else args.profile,
                    "python": config.settings.python, "torch": config.settings.torch, "suite": ctx.suite,
                    "platform": platform.platform(), "hardware": hardware(merged), "measured": dates,
                    "generated": max(dates.values(), default=before_meta.get("generated", stamp))}
            if merged:
                documents.write_cells(out, merged)  # cells/ mirrors the report: no fault over a verdict
                written = reports.write(out, merged, meta, step_summary=True)
                note = f" ({kept} cells kept from the report already there)" if kept else ""
                print(f"compat: wrote {', '.join(f for f in reports.FILES if f in written)} to {out}{note}",
                      file=sys.stderr)
    if ctx.stop.is_set():
        print(f"compat: interrupted: {len(results)} of {len(cells)} cells recorded; rerun to resume", file=sys.stderr)
        return 130
    return 1 if any(r.status == Status.ERROR for r in results) else 0


def cmd_list(args: argparse.Namespace) -> int:
    _, cells = options.planned(args)
    for c in cells:
        print(c.only if args.only_flags else c.id)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fmt = options.Help
    m = sub.add_parser("matrix", formatter_class=fmt, help="run the matrix's cells and write the reports",
                       description="Install each TRL x transformers pair of a profile with uv, run the cell suite in "
                                   "it, and write compat.json, COMPAT.md, GRIDS.md, compat.html, junit.xml and compat.svg.")
    options.selection(m)
    m.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                   help="results directory: reports are written (and merged into) here")
    m.add_argument("--fresh", action="store_true", help="ignore cached results (environments are still reused)")
    m.add_argument("--force", action="store_true",
                   help="install each pair even where TRL's metadata forbids it (uv overrides), to test the metadata")
    m.add_argument("-j", "--jobs", type=options.positive_int, default=0,
                   help="cells at once (default 0: what the machine's cores and memory hold)")
    m.set_defaults(func=cmd_matrix)
    ls = sub.add_parser("list", formatter_class=fmt, help="print the cells a profile expands to")
    options.selection(ls)
    ls.add_argument("--only-flags", action="store_true", help="print each cell as an --only value")
    ls.set_defaults(func=cmd_list)

"""Command line: `python -m compat matrix|list|report ...`. Host side only."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from .harness import config as cfg
from .harness import commands, export, findings, index, lock, plan, progress, report, run
from .harness.envs import EnvError
from .harness.results import CellResult, read_result
from .memory import cli as memory_cli


def default_jobs() -> int:
    """Cells at once: torch training wants ~2 cores and a few GiB each."""
    cores = os.cpu_count() or 1
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 8
    return max(1, min(cores // 2, int(mem_gib // 6)))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=Path("matrix.toml"), help="matrix file (default: ./matrix.toml)")
    p.add_argument("--profile", default="default")
    p.add_argument("--only", action="append", default=[], metavar="trl==A,transformers==B",
                   help="run just this pair (repeatable); overrides --profile")
    p.add_argument("--shard", default=None, metavar="i/n", help="run the i-th of n deterministic slices")


def _plan(args: argparse.Namespace) -> tuple[cfg.MatrixConfig, list[plan.Cell]]:
    config = cfg.load(args.config)
    shard = plan.parse_shard(args.shard) if args.shard else None
    cells = plan.plan(config, args.profile, index.lister(args.config), args.only, shard,
                      force=getattr(args, "force", False))
    return config, cells


def cmd_list(args: argparse.Namespace) -> int:
    _, cells = _plan(args)
    for c in cells:
        print(c.id if not args.only_flags else c.only)
    return 0


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".compat-write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise cfg.ConfigError(f"--out {out}: results directory is not writable: {exc.strerror}") from None


def cmd_matrix(args: argparse.Namespace) -> int:
    config, cells = _plan(args)
    out = args.out.resolve()
    _check_writable(out)
    jobs = args.jobs or default_jobs()
    ctx = run.project_context(args.config, config.settings, out, fresh=args.fresh, jobs=jobs)
    with lock.exclusive(out), run.stop_on_signals(ctx.stop):
        reporter = progress.make(len(cells), jobs)
        print(f"compat: {len(cells)} cells, {jobs} at a time -> {out}", file=sys.stderr)
        results = run.run_all(ctx, cells, jobs, reporter)
        reporter.close()
        meta = {"profile": "only" if args.only else args.profile, "python": config.settings.python,
                "torch": config.settings.torch, "suite": ctx.suite, "platform": platform.platform()}
        if results:
            report.write(out, results, meta, step_summary=True)
            print(f"compat: wrote {out / 'compat.json'}, COMPAT.md, compat.html and junit.xml", file=sys.stderr)
    if ctx.stop.is_set():
        print(f"compat: interrupted: {len(results)} of {len(cells)} cells recorded; rerun to resume", file=sys.stderr)
        return 130
    return 1 if any(r.status == "error" for r in results) else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render the reports (e.g. after editing the renderer) from OUT/compat.json, keeping its
    metadata, or from OUT/cells/*.json when there is no compat.json yet."""
    doc = args.out / "compat.json"
    if doc.exists():
        meta = {k: v for k, v in json.loads(doc.read_text()).items() if k not in ("cells", "generated", "schema_version")}
        results = load_report(doc)
    else:
        meta = {"profile": args.profile}
        results = [r for r in (read_result(p) for p in sorted((args.out / "cells").glob("*.json"))) if r is not None]
    if not results:
        raise cfg.ConfigError(f"{args.out}: no readable cell results")
    report.write(args.out, results, meta)
    return 0


def load_report(path: Path) -> list[CellResult]:
    try:
        cells = json.loads(path.read_text())["cells"]
        return [CellResult.from_dict(c) for c in cells]
    except OSError as exc:
        raise cfg.ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise cfg.ConfigError(f"{path}: not a compat.json report: {exc}") from None


def cmd_findings(args: argparse.Namespace) -> int:
    """Regenerate compat/findings.json from a report; same results, same bytes."""
    changed = findings.write(load_report(args.report), args.output)
    print(f"compat: {args.output} {'updated' if changed else 'unchanged'}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """One self-contained adapter file with the findings embedded."""
    try:
        export.export(Path(__file__).parent, args.findings, args.output)
    except export.ExportError as exc:
        raise cfg.ConfigError(str(exc)) from None
    print(f"compat: wrote {args.output}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The installed pair's measured status; non-zero exit for a pair measured broken."""
    from . import check

    pair = None
    if args.pair:
        trl, tf = plan.parse_only(args.pair)
        pair = (str(trl), str(tf))
    try:
        return check.main(args.findings, args.json, pair)
    except LookupError as exc:
        raise cfg.ConfigError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise cfg.ConfigError(f"{args.findings}: cannot read findings: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("matrix", help="run the matrix and write the reports")
    _common(m)
    m.add_argument("--out", type=Path, default=Path("reports"))
    m.add_argument("--fresh", action="store_true", help="ignore cached results (environments are still reused)")
    m.add_argument("--force", action="store_true",
                   help="install each pair even where TRL's metadata forbids it (uv overrides), to test the metadata")
    m.add_argument("-j", "--jobs", type=int, default=0, help="cells at once (default: fits cores and memory)")
    m.set_defaults(func=cmd_matrix)
    ls = sub.add_parser("list", help="print the cells a profile expands to")
    _common(ls)
    ls.add_argument("--only-flags", action="store_true", help="print each cell as an --only value")
    ls.set_defaults(func=cmd_list)
    rp = sub.add_parser("report", help="rebuild reports from OUT/cells/*.json")
    rp.add_argument("--out", type=Path, default=Path("reports"))
    rp.add_argument("--profile", default="default")
    rp.set_defaults(func=cmd_report)
    fd = sub.add_parser("findings", help="generate compat/findings.json from reports/compat.json")
    fd.add_argument("--report", type=Path, default=Path("reports/compat.json"))
    fd.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "findings.json")
    fd.set_defaults(func=cmd_findings)
    ex = sub.add_parser("export-adapter", help="write one self-contained adapter file with findings embedded")
    ex.add_argument("-o", "--output", type=Path, default=Path("kto_compat.py"))
    ex.add_argument("--findings", type=Path, default=Path(__file__).parent / "findings.json")
    ex.set_defaults(func=cmd_export)
    ck = sub.add_parser("check", help="measured status of the installed trl/transformers pair")
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    ck.add_argument("--findings", type=Path, default=None, help="findings file (default: the package's findings.json)")
    ck.add_argument("--pair", default=None, metavar="trl==A,transformers==B", help="check this pair instead of the installed one")
    ck.set_defaults(func=cmd_check)
    memory_cli.register(sub)  # memory (compat/memory/cli.py)
    commands.register(sub)  # merge, releases, regressions, bisect, bench (compat/harness/commands.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (cfg.ConfigError, EnvError, index.IndexError_, lock.LockedError) as exc:
        print(f"compat: error: {exc}", file=sys.stderr)
        return 2

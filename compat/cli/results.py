"""Commands over stored results: report, findings, export-adapter, merge, releases, shards, regressions, changes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import compat
from compat.cell.export import ExportError, export
from compat.cli import options
from compat.contract import ContractError
from compat.harness import (
    changes,
    documents,
    environments,
    findings,
    index,
    lock,
    locks,
    logs,
    merge,
    plan,
    regressions,
    releases,
)
from compat.harness import config as cfg
from compat.harness.documents import read_text
from compat.harness.files import SYMLINKS, atomic_write, target
from compat.harness.reports import publish as reports

PACKAGE = Path(compat.__file__).parent


def stored_cells(results: Path) -> documents.Source:
    """The stored results ``--results`` names; none at all is an error (an empty input must not wipe a
    report or the findings)."""
    source = documents.load_results(results)
    if not source.cells:
        raise cfg.ConfigError(f"--results {results}: holds no cells")
    locks.verify(source.path, source.cells, str(results))  # a report travels with the locks its cells name
    return source


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render the reports from stored results, keeping their measurement time; compat.json is
    only written where there was none (rendering never rewrites what was measured)."""
    stored = stored_cells(args.results)
    cells, meta = list(stored.cells), stored.meta
    out = options.writable(args.out or stored.path, "--out" if args.out else "--results")
    existing = out / "compat.json"
    if existing.exists() and out != stored.path.resolve():
        raise cfg.ConfigError(f"--out {out} already holds a compat.json (other measurements): render into an empty "
                              "directory, or use merge to combine reports")
    with lock.exclusive(out):
        locks.carry([stored.path], out, cells)  # a report is published with the locks its cells name
        written = reports.write(out, cells, {"profile": args.profile, **meta}, document=not existing.exists())
    print(f"compat: rendered {', '.join(written)} in {out} from {len(cells)} cells", file=sys.stderr)
    return 0


def cmd_findings(args: argparse.Namespace) -> int:
    """Regenerate compat/findings.json from a report; same results, same bytes."""
    if args.output is None:
        root = PACKAGE.parent
        if not (root / "tests" / "cell").is_dir() or not (root / "pyproject.toml").is_file():
            # An installed kto-compat: the package's own findings are the published table's, not this run's.
            raise cfg.ConfigError(f"findings: this kto-compat is installed in {root}, not a checkout; pass -o FILE")
        args.output = PACKAGE / "findings.json"
    target(args.output, "-o")  # refused before the results are read
    stored = stored_cells(args.results)
    cells = list(stored.cells)
    changed = findings.write(cells, args.output)
    # The locks of the cells the findings name travel beside them (the package ships compat/locks/), so
    # `kto-compat lock` and `check` need no checkout and no network.
    shipped = locks.carry([stored.path], args.output.parent, environments.tabled(cells))
    print(f"compat: {args.output} {'updated' if changed else 'unchanged'}; {shipped} locks in "
          f"{args.output.parent / 'locks'}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """One self-contained adapter file with the findings embedded."""
    target(args.output, "-o")  # refused before any work: a device, a FIFO, a directory
    try:
        data = findings.load(args.findings)
        data.pop("environments", None)  # check's table of what each cell ran with; the adapter never reads it
        text = export(PACKAGE, data)
    except ExportError as exc:
        raise cfg.ConfigError(str(exc)) from None
    atomic_write(args.output, text, "-o")
    print(f"compat: wrote {args.output}", file=sys.stderr)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Shard result dirs -> one report, as if one machine had run every cell, whatever their order."""
    sources = [documents.load_results(d) for d in sorted(args.dirs)]
    base = documents.load_results(args.base) if args.base else None
    for source in sources + ([base] if base else []):
        locks.verify(source.path, source.cells, str(source.path))
    cells = merge.merge_cells(sources, base)
    if not cells:
        raise cfg.ConfigError("merge: the inputs hold no cells")
    every = sources + ([base] if base else [])
    meta = merge.merge_meta(every, merge.measured_dates(sources, base, cells))
    # Only shards measured on fresh CI runners say what a cold cell costs; a local report's times are warm.
    cold = releases.cold_seconds([s.cells for s in sources]) if args.cold else None
    if cold is not None:
        meta[releases.COLD_KEY] = cold
    elif base is not None and releases.COLD_KEY in base.meta:
        meta[releases.COLD_KEY] = base.meta[releases.COLD_KEY]
    # The suite label says what the merged cells ran under: a base's older suite goes once no cell keeps it.
    if any(c.suite for c in cells):
        meta["suite"] = merge.label_union("suite", *(c.suite for c in cells))
    if args.profile:  # the profiles just measured join those the table already holds
        meta["profile"] = merge.label_union("profile", base.meta.get("profile") if base else "", args.profile)
    elif base is not None and "profile" in base.meta:
        meta["profile"] = base.meta["profile"]  # new cells join the published table; they do not relabel it
    out = options.writable(args.out)
    with lock.exclusive(out):
        # Logs: the newest run's first, then the base's already published ones; a cell links only to
        # a file that is there.
        cells = logs.publish([s.path for s in sources] + ([base.path] if base else []), out, cells,
                             int(args.logs_mib * 2**20))
        documents.write_cells(out, cells)
        # Each lock once, from the newest input that holds it; a cell's lock is published where the cell is.
        locks.carry([s.path for s in sources] + ([base.path] if base else []), out, cells)
        reports.write(out, cells, meta)
    print(f"compat: merged {len(cells)} cells from {len(sources)} dir(s)"
          f"{' over ' + str(args.base) if args.base else ''} -> {out / 'compat.json'}", file=sys.stderr)
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    """New index releases the profile would pick and the stored report lacks; always exit 0."""
    config = cfg.load(args.config)
    planned = plan.plan(config, args.profile, index.lister(args.config, 0 if args.refresh else 3600.0))
    report_path = args.results / "compat.json"
    found = releases.uncovered(planned, documents.load_results(report_path, missing_ok=True).cells)
    if args.only_flags:
        # `--only` runs a pair under settings.resolution; a grid's own mode (e.g. as-of-release) is
        # selected with ,resolution=..., so every uncovered cell is reachable.
        for only in dict.fromkeys(c.only for c in found.cells):
            print(only)
    else:
        print(releases.render(found, report_path, args.profile))
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    """GitHub-output lines splitting CELLS (one --only value a line) into shards of about --minutes each."""
    try:
        cells = [ln.strip() for ln in read_text(args.cells).splitlines() if ln.strip()]
    except ContractError as exc:  # a FIFO or a device is refused, not read forever
        raise cfg.ConfigError(f"cannot read the cell list: {exc}") from None
    for text in cells:
        plan.parse_only(text)  # a malformed line is an error here, not in every shard
    if not 0 < args.minutes < float("inf"):  # nan compares false both ways
        raise cfg.ConfigError(f"--minutes {args.minutes}: must be a number above 0")
    meta = documents.load_results(args.results / "compat.json", missing_ok=True).meta
    found = releases.shard_plan(cells, meta, args.minutes, args.max)
    sys.stdout.write(found.github_output())
    return 0


def cmd_regressions(args: argparse.Namespace) -> int:
    """Markdown of the regressions and fixes NEW brings over OLD on stdout; nothing when none. With
    --issues, also the `gh` calls that keep one issue per trainer (one tab-separated line each in
    --actions DIR/actions.tsv, bodies beside it). Exit 0."""
    old, new = list(documents.load_results(args.old).cells), list(documents.load_results(args.new).cells)
    found = regressions.find(old, new)
    sys.stdout.write(regressions.markdown(found))
    print(f"compat: {sum(s.regression for s in found)} regression(s), {sum(s.fix for s in found)} fix(es)",
          file=sys.stderr)
    if args.issues is not None:
        try:
            listed = json.loads(args.issues.read_text(encoding="utf-8") or "[]")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise cfg.ConfigError(f"--issues {args.issues}: not a `gh issue list --json` answer: {exc}") from None
        if not isinstance(listed, list) or not all(isinstance(i, dict) and "number" in i for i in listed):
            raise cfg.ConfigError(f"--issues {args.issues}: expected a JSON list of issues with a number each")
        actions = regressions.issue_actions(found, new, listed, args.run_url)
        lines = []
        for n, act in enumerate(actions, 1):
            atomic_write(args.actions / f"issue-{n}.md", act.body)
            lines.append(f"{act.action}\t{act.target}\t{args.actions / f'issue-{n}.md'}\n")
        atomic_write(args.actions / "actions.tsv", "".join(lines))
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    """The pull request's body (and the step summary) for OLD -> NEW on stdout; `changed=true|false`
    appended to --github-output: false when only errors, dates or timings differ."""
    found = changes.Changes(documents.load_results(args.old).cells, documents.load_results(args.new).cells)
    sys.stdout.write(changes.body(found, args.links if found.changed else ""))  # unpublished logs: no link
    if args.github_output is not None:
        with args.github_output.open("a", encoding="utf-8") as fh:
            fh.write(f"changed={'true' if found.changed else 'false'}\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fmt = options.Help
    rp = sub.add_parser("report", formatter_class=fmt, help="re-render the reports from stored results")
    options.results_dir(rp)
    rp.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="where to write the rendered files (default: --results itself)")
    rp.add_argument("--profile", default="default", help="profile name for results that record none")
    rp.set_defaults(func=cmd_report)

    fd = sub.add_parser("findings", formatter_class=fmt, help="generate compat/findings.json from stored results")
    options.results_dir(fd)
    fd.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                    help=f"findings file to write (default: compat/findings.json of the kto-compat checkout this runs "
                         f"from; an installed kto-compat needs -o); {SYMLINKS}; anything but a regular file is refused")
    fd.set_defaults(func=cmd_findings)

    ex = sub.add_parser("export-adapter", formatter_class=fmt,
                        help="write one self-contained adapter file with the findings embedded")
    ex.add_argument("-o", "--output", type=Path, default=Path("kto_compat.py"), metavar="FILE",
                    help=f"file to write; {SYMLINKS}; anything but a regular file is refused")
    ex.add_argument("--findings", type=Path, default=PACKAGE / "findings.json", metavar="FILE", help="findings to embed")
    ex.set_defaults(func=cmd_export)

    mg = sub.add_parser("merge", formatter_class=fmt, help="merge shard result dirs into one report")
    mg.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="result dirs (each with compat.json or cells/*.json)")
    mg.add_argument("--base", type=Path, default=None, metavar="DIR",
                    help="a stored report dir whose cells the DIRs may replace (a harness error never does)")
    mg.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="where to write the merged report")
    mg.add_argument("--cold", action="store_true",
                    help="the DIRs are shards measured on fresh CI runners: record their worst mean cell time, which "
                         "`shards` sizes the next run's shards from")
    mg.add_argument("--profile", default=None,
                    help="profiles just measured; they join the --base report's profiles (default: the inputs' own)")
    mg.add_argument("--logs-mib", type=float, default=logs.BUDGET_BYTES / 2**20, metavar="MIB",
                    help="size budget of the compressed cell logs published beside the report")
    mg.set_defaults(func=cmd_merge)

    rl = sub.add_parser("releases", formatter_class=fmt, help="index releases the stored results do not cover yet")
    options.results_dir(rl)
    options.matrix_file(rl)
    rl.add_argument("--profile", default="default", help="profile of the matrix file")
    rl.add_argument("--only-flags", action="store_true", help="print each new cell as an --only value")
    rl.add_argument("--refresh", action="store_true", help="ignore the one-hour index listing cache")
    rl.set_defaults(func=cmd_releases)

    sh = sub.add_parser("shards", formatter_class=fmt,
                        help="split cells into CI shards from the per-cell time measured cold on CI (GitHub output lines)")
    sh.add_argument("cells", type=Path, metavar="CELLS", help="file with one --only value a line")
    options.results_dir(sh, what="measured results whose cell times size the shards")
    sh.add_argument("--minutes", type=float, default=20.0, help="cell time wanted per shard")
    sh.add_argument("--max", type=options.positive_int, default=20, help="most shards (runners) at once")
    sh.set_defaults(func=cmd_shards)

    rg = sub.add_parser("regressions", formatter_class=fmt,
                        help="what NEW's releases broke (and fixed) against the release before, as Markdown")
    old_new(rg)
    rg.add_argument("--issues", type=Path, default=None, metavar="FILE",
                    help="open regression issues (`gh issue list --json number,title,body`): plan their updates")
    rg.add_argument("--run-url", default="", help="the run named in the issues")
    rg.add_argument("--actions", type=Path, default=Path("issue-actions"), metavar="DIR",
                    help="where the planned `gh` calls (actions.tsv) and their bodies go")
    rg.set_defaults(func=cmd_regressions)

    ch = sub.add_parser("changes", formatter_class=fmt, help="what NEW changed over OLD: the pull request's body")
    old_new(ch)
    ch.add_argument("--links", default="", metavar="URL", help="where the published table's files are (for log links)")
    ch.add_argument("--github-output", type=Path, default=None, metavar="FILE", help="append changed=true|false here")
    ch.set_defaults(func=cmd_changes)


def old_new(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD.json", help="the earlier compat.json (e.g. the published one)")
    parser.add_argument("new", type=Path, metavar="NEW.json", help="the newer compat.json")

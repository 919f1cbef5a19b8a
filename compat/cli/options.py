"""Options several commands share, defined once: which matrix, which cells, where results live."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from compat.harness import config as cfg
from compat.harness import index, plan


class Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown once: not where the help already says its default, nor for an unset (None/False/[]) one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, [], "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class HelpWithEpilog(argparse.RawDescriptionHelpFormatter, Help):
    """Help whose epilog (a table of exit codes, say) keeps its line breaks."""


ONLY_HELP = ("a pair trl==A,transformers==B (plus any further axis: ,datasets==C), or one axis alone (trl==A: "
             "that row of the profile); optionally ,resolution=as-of-release and ,trainer=dpo. Repeatable; "
             "overrides --profile's selection")


def matrix_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=Path("matrix.toml"), metavar="FILE", help="the matrix file")


def selection(p: argparse.ArgumentParser, shard: bool = True) -> None:
    matrix_file(p)
    p.add_argument("--profile", default="default", help="profile of the matrix file")
    p.add_argument("--only", action="append", default=[], metavar="PAIR", help=ONLY_HELP)
    if shard:
        p.add_argument("--shard", default=None, metavar="i/n", help="run the i-th of n deterministic slices")


def results_dir(p: argparse.ArgumentParser, default: str = "reports", what: str = "stored results") -> None:
    p.add_argument("--results", type=Path, default=Path(default), metavar="DIR",
                   help=f"directory holding the {what} (its compat.json)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def default_jobs() -> int:
    """Cells at once: a cell is one Python process, mostly single-threaded imports and under 1 GiB
    peak RSS (measured per cell), so one cell per core; memory caps it at 2 GiB a cell. On 2 cores
    -j 2 ran 4 warm cells in 0.5x the time of -j 1."""
    cores = os.cpu_count() or 1
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 8
    return max(1, min(cores, int(mem_gib // 2)))


def planned(args: argparse.Namespace, whole: bool = False) -> tuple[cfg.MatrixConfig, list[plan.Cell]]:
    """The selected cells: this shard's, or with ``whole`` every shard's."""
    config = cfg.load(args.config)
    shard = plan.parse_shard(args.shard) if getattr(args, "shard", None) and not whole else None
    cells = plan.plan(config, args.profile, index.lister(args.config), args.only, shard,
                      force=getattr(args, "force", False))
    return config, cells


def writable(out: Path, flag: str = "--out") -> Path:
    """The directory, created, and checked writable before any work starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".compat-write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise cfg.ConfigError(f"{flag} {out}: directory is not writable: {exc.strerror or exc}") from None
    return out.resolve()

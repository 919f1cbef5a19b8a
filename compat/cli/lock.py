"""`kto-compat lock PAIR`: a measured cell's lock as a requirements file.

A verdict holds for the environment that was measured, so the line to copy
reproduces that environment: every distribution the cell ran with, exact,
torch's build included. The output is a requirements file that
``uv pip sync`` and ``pip install -r`` accept. It comes from the findings
shipped in the package (compat/findings.json and compat/locks/), so it needs
no checkout and no network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compat.cli import options
from compat.contract import DEFAULT_TRAINER, Resolution, Status
from compat.harness import config as cfg
from compat.harness import environments as envs
from compat.harness import findings as findings_mod
from compat.harness import locks
from compat.harness.plan import parse_only


def find(table: list[envs.Measured], trl: str, transformers: str, resolution: str, trainer: str,
         pair: str, further: dict[str, str] | None = None) -> envs.Measured:
    """The installed cell PAIR names (at its further axes, if any); ConfigError (exit 2) naming the pair, and
    what was measured of it, otherwise."""
    want = further or {}
    same = [c for c in table if c.trainer == trainer and envs.same("trl", c.trl, trl)
            and envs.same("transformers", c.transformers, transformers) and dict(c.axes).keys() == want.keys()
            and all(envs.same(k, v, want[k]) for k, v in c.axes)]
    cell = next((c for c in same if c.resolution == resolution), None)
    if cell is not None and cell.lock:
        return cell
    if cell is not None:
        why = ("the resolver refused it (unresolvable), so nothing was installed" if cell.status == Status.UNRESOLVABLE
               else "no lock was published for it")
        raise cfg.ConfigError(f"{pair}: the table has no installed cell for it with a lock: {why}")
    others = sorted({c.resolution for c in same if c.lock})
    hint = f"; it was measured with resolution={', resolution='.join(others)}" if others else ""
    raise cfg.ConfigError(f"{pair}: the table has no installed cell for it (trainer {trainer}, resolution "
                          f"{resolution}){hint}")


def requirements(cell: envs.Measured, text: str, torch_from: str | None = None) -> str:
    """The lock as a requirements file: a header naming the cell, where torch's build comes from, the pins."""
    pins = locks.pins(text)
    python = cell.env.get("python")
    links = torch_from or envs.torch_links(pins.get("torch", ""))
    head = [f"# kto-compat lock {envs.only(cell.trl, cell.transformers, cell.resolution, cell.trainer, cell.axes)}",
            f"# the environment kto-compat measured {cell.status} (trl {cell.trl} + transformers {cell.transformers}, "
            f"trainer {cell.trainer}, dependencies resolved {cell.resolution}); lock {cell.lock}",
            "# every distribution it ran with, exact" + (f"; it ran Python {python}" if python else ""),
            "# install into a fresh environment: uv pip sync THIS_FILE   (or: pip install -r THIS_FILE)"]
    if links:
        head.append(f"--find-links {links}")
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join(head + body) + "\n"


def cmd_lock(args: argparse.Namespace) -> int:
    """Print the cell's lock; exit 2 naming the pair when the table has no installed cell for it."""
    only = parse_only(args.pair, "PAIR")
    if only.trl is None or only.transformers is None:
        raise cfg.ConfigError(f"PAIR {args.pair!r}: name both trl==A and transformers==B")
    path = args.findings or findings_mod.PACKAGED
    data = findings_mod.load(path)  # a ContractError is one line and exit 2, like every bad input
    cell = find(envs.measured(data, trainer=None), str(only.trl), str(only.transformers), only.resolution or Resolution.LATEST,
                only.trainer or DEFAULT_TRAINER, args.pair, {k: str(v) for k, v in only.axes})
    assert cell.lock is not None  # find() returns only cells with a lock
    sys.stdout.write(requirements(cell, locks.read(path.parent, cell.lock), args.torch_from))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    lk = sub.add_parser("lock", formatter_class=options.Help,
                        help="print a measured cell's lock (every distribution it ran with) as a requirements file",
                        description="Print the lock of the cell PAIR names as a requirements file that `uv pip sync` "
                                    "and `pip install -r` accept: kto-compat lock trl==A,transformers==B > lock.txt && "
                                    "uv pip sync lock.txt. Needs only the installed package (no network). Exit 2 when "
                                    "the table has no installed cell for PAIR.")
    lk.add_argument("pair", metavar="PAIR",
                    help="trl==A,transformers==B[,resolution=MODE][,trainer=NAME] (default: latest, kto)")
    lk.add_argument("--findings", type=Path, default=None, metavar="FILE",
                    help="findings file, its locks in locks/ beside it (default: the package's compat/findings.json)")
    lk.add_argument("--torch-from", default=None, metavar="URL_OR_DIR",
                    help="where torch's recorded build comes from (written as --find-links; default: PyTorch's page "
                         "of that build, e.g. https://download.pytorch.org/whl/cpu/torch/), e.g. a local wheel directory")
    lk.set_defaults(func=cmd_lock)

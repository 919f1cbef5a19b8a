"""`kto-compat` (or `python -m compat`): every subcommand registered in one place.

Each module of this package adds its subcommands through ``register(sub)``;
the options several commands share (which matrix, which cells, where results
live) are built by the helpers in ``compat.cli.options``. Errors kto-compat
raises on purpose (bad input, a locked results directory, no uv) derive from
``compat.contract.CompatError``: main prints one line (JSON with ``--json``)
and exits 2, and nothing already measured is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from compat import __version__
from compat.cli import options
from compat.contract import CompatError


def prog_name(argv0: str | None = None) -> str:
    name = os.path.basename(argv0 if argv0 is not None else sys.argv[0])
    return "kto-compat" if name.startswith("kto-compat") else "python -m compat"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (like every other kto-compat error), still exit 2, and
    JSON on stdout when the command line asked for --json."""

    json_errors = False

    def error(self, message: str) -> None:  # type: ignore[override]
        text = f"{message} (see {self.prog} --help)"
        if self.json_errors:
            print(json.dumps({"error": text, "exit_code": 2}))
            self.exit(2)
        self.exit(2, f"{self.prog}: error: {text}\n")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from compat.cli import check, gpu, lock, memory, pipeline, platform, results, scale

    parser = Parser(
        prog=prog or prog_name(), formatter_class=options.Help,
        description="Measure which TRL x transformers pairs train KTO, and adapt training scripts to them.",
        epilog="Run 'COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"kto-compat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (pipeline, results, platform, scale, check, lock, memory, gpu):  # the order --help lists them in
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    Parser.json_errors = "--json" in (sys.argv[1:] if argv is None else list(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except CompatError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "exit_code": 2}))
        else:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `kto-compat ... | head`: the reader left; say nothing more (and let the exit flush nothing).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

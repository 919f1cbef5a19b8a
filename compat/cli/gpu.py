"""`kto-compat gpu-check prepare|run`: the named cells and the memory calibration on a GPU machine
(compat/harness/gpu.py says how the offline machine gets its packages)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from compat.cli import options
from compat.contract import Status
from compat.harness import config as cfg
from compat.harness import gpu, suite
from compat.harness.plan import parse_pair

# The cells: the two named pairs, then one platform-bound cell (trl 1.15.0 with a transformers it pairs with).
PAIRS = ("trl==1.16.0,transformers==5.24.0", "trl==0.12.2,transformers==4.46.3", "trl==1.15.0,transformers==5.24.0")


def calibration_spec(root: Path, which: str) -> dict[str, Any]:
    """``full``: the calibration test's six tiny Llamas; ``tiny``: calibrate.py's one default size (the dry run)."""
    name, attr = ("test_memory_calibration", "SPEC") if which == "full" else ("calibrate", "DEFAULT_SPEC")
    sys.path.insert(0, str(root / "tests" / "calibration"))
    try:
        spec = importlib.util.spec_from_file_location(name, root / "tests" / "calibration" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return dict(getattr(module, attr))


def cmd_prepare(args: argparse.Namespace) -> int:
    out = options.writable(args.out)
    image: dict[str, str] = {}
    if args.image is not None:
        try:
            image = gpu.image_of(args.image.read_text(encoding="utf-8"), str(args.image))
        except OSError as exc:
            raise cfg.ConfigError(f"--image {args.image}: cannot read: {exc.strerror or exc}") from None
    pairs = [tuple(str(v) for v in parse_pair(p, "--pair")) for p in (args.pair or PAIRS)]
    settings = cfg.load(args.config).settings
    target = gpu.Target(args.python, args.platform, args.torch, image)
    plan = gpu.prepare(pairs, settings, target, out, calibration_spec(suite.checkout(), args.calibration),  # type: ignore[arg-type]
                       int(args.budget_mib * 2**20))
    for p in plan["pairs"]:
        print(f"compat: gpu-check: trl {p['trl']} + transformers {p['transformers']}: {len(p['pins'])} pins, "
              f"{len(p['wheels'])} travel as wheels", file=sys.stderr)
    print(f"compat: gpu-check: plan in {out / gpu.PLAN}, wheels {plan['wheel_bytes'] / 2**20:.1f} MiB", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not (args.plan / gpu.PLAN).is_file():
        raise cfg.ConfigError(f"--plan {args.plan}: no {gpu.PLAN} (make it with `kto-compat gpu-check prepare`)")
    out = options.writable(args.out)
    cells, runs = gpu.run(suite.checkout(), args.plan, out, args.work, args.python or sys.executable, args.timeout,
                          say=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({"cells": {c.id: str(c.status) for c in cells}, "calibration_runs": len(runs)}))
    return 1 if any(c.status == Status.ERROR for c in cells) else 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("gpu-check", formatter_class=options.Help,
                       help="the named cells and the memory calibration on a GPU machine (prepare here, run there)")
    steps = g.add_subparsers(dest="step", metavar="STEP", required=True)
    p = steps.add_parser("prepare", formatter_class=options.Help,
                         help="resolve the pairs for the GPU machine and download the wheels its image lacks")
    options.matrix_file(p)
    p.add_argument("--out", type=Path, default=Path(".gpu"), metavar="DIR", help="plan and wheels (carried to the machine)")
    p.add_argument("--pair", action="append", default=[], metavar="PAIR",
                   help=f"trl==A,transformers==B; repeatable (default: {'; '.join(PAIRS)})")
    p.add_argument("--image", type=Path, default=None, metavar="FILE",
                   help="the machine's `pip list --format=json` (gpu-check run writes it as image.json): its versions "
                        "are preferred and never carried; without it every pin but torch's CUDA stack travels")
    p.add_argument("--python", default="3.12", help="the machine's Python (major.minor)")
    p.add_argument("--platform", default="x86_64-manylinux_2_28", help="the machine's platform (uv's --python-platform)")
    p.add_argument("--torch", default="2.11.0", help="the machine's torch, public version (its image's; never carried)")
    p.add_argument("--calibration", choices=("full", "tiny"), default="full",
                   help="full: tests/calibration's six tiny Llamas; tiny: one size (a dry run)")
    p.add_argument("--budget-mib", type=float, default=gpu.BUDGET / 2**20, help="most MiB of wheels the plan may carry")
    p.set_defaults(func=cmd_prepare)
    r = steps.add_parser("run", formatter_class=options.Help,
                         help="on the machine, offline: each planned cell, then the calibration")
    r.add_argument("--plan", type=Path, default=Path(".gpu"), metavar="DIR", help="what prepare wrote")
    r.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="where cells/*.json, calibration.json and image.json go (mergeable: kto-compat merge DIR --base ...)")
    r.add_argument("--work", type=Path, default=Path("/tmp/kto-compat-gpu"), metavar="DIR",
                   help="overlays, logs and the suite's scratch files")
    r.add_argument("--python", default=None, help="the interpreter holding the machine's torch (default: this one)")
    r.add_argument("--timeout", type=float, default=300.0, help="seconds a cell suite (or the calibration) may take")
    r.set_defaults(func=cmd_run)

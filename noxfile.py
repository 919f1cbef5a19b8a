"""nox sessions: `matrix` (all cells), `cell(...)` (one cell by name), `tests`, `lint`, `bench`.

`nox -l` lists every cell of the default matrix as its own session. The
sessions only install kto-compat and call `python -m compat`; the harness
itself builds each cell's environment with uv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))  # plan cells from this checkout's compat/ (host side: stdlib + packaging only)

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _default_cells() -> list[tuple[str, str]]:
    from compat.contract import CompatError
    from compat.harness import config, index, plan

    try:
        cfg = config.load(ROOT / "matrix.toml")
        cells = plan.plan(cfg, "default", lambda name: index.fetch(name, ROOT / ".compat" / "index"))
    except CompatError as exc:  # listing must not crash nox itself
        print(f"noxfile: cannot list cells: {exc}", file=sys.stderr)
        return []
    return [(c.id, c.only) for c in cells]


def _install(session: nox.Session, extras: str = "") -> None:
    session.install("-e", f".{extras}")


@nox.session
def matrix(session: nox.Session) -> None:
    """Run every cell of a profile (default: `default`) and write reports/."""
    _install(session, "[matrix,plot]")  # uv runs the cells; matplotlib draws reports/compat.svg
    args = session.posargs or ["--profile", "default", "--out", "reports"]
    session.run("python", "-m", "compat", "matrix", *args)
    if "--only" not in args and "--shard" not in args:  # findings come from a whole profile's report
        out = args[args.index("--out") + 1] if "--out" in args else "reports"
        # Findings of this run beside its report; compat/findings.json is generated from the published table.
        session.run("python", "-m", "compat", "findings", "--results", out, "-o", f"{out}/findings.json")


@nox.session
@nox.parametrize("pair", [nox.param(only, id=cell_id) for cell_id, only in _default_cells()])
def cell(session: nox.Session, pair: str) -> None:
    """One cell of the default matrix; its report goes to reports/single/."""
    _install(session, "[matrix]")
    session.run("python", "-m", "compat", "matrix", "--only", pair, "--out", "reports/single", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The project's tests: unit (fast) and integration (real cells)."""
    _install(session, "[test,plot]")  # plot: the SVG report is tested too
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint, import order) over the tree and mypy over compat/, as configured in pyproject.toml."""
    _install(session, "[lint]")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """A cell over its floor (warm, cold), uv vs pip setup, cached vs cold matrix, side by side (`--pair ...`)."""
    _install(session, "[matrix]")
    session.run("python", "-m", "compat", "bench", *session.posargs)

"""Platform-bound failures, measured: a failure that moves when a platform fact changes belongs to the
platform, not to the pair.

A cell records the platform facts that select code paths (``platform.triton``, ``platform.device``,
...). Where a failed cell's facts include one that can be changed on this machine, the cell is measured
once more with that fact changed, in an environment of its own: the cell's pins plus the changed
distribution, through the harness's own uv and suite machinery (``run.run_cell``). Only when the failure
moves (another stage or message, or it trains) is ``failure.platform`` set, with the measured reason;
where it reproduces, the mark is taken off. A rerun that errs measured nothing and changes nothing, and
no rerun is cached as the cell's verdict.

Candidates are chosen cheaply and by measurement, never by version: the cell failed building or
training, its platform fact is off, and the module that raised the failure (``failure.raised_by``) is
a file that mentions the distribution, read from an environment holding that module's release.

Host side: reads files and runs uv and the cell suite as subprocesses; imports nothing of the ML stack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from compat.contract import CellResult, CompatError, Stage, Status
from compat.harness import run
from compat.harness.envs import Envs, first_error_line, uv_bin
from compat.harness.envs import _run as run_uv
from compat.harness.plan import Cell
from compat.harness.reports.vocab import first_line


@dataclass(frozen=True)
class Fact:
    """A platform fact this machine can change: the probe recording it, its value when off, the
    distribution that turns it on, and the reason a failure that moves with it is given."""

    probe: str
    off: str
    distribution: str
    reason: str


TRITON = Fact("platform.triton", "not importable", "triton", "triton is not importable with this torch build")
FACTS: tuple[Fact, ...] = (TRITON,)
STAGES = (Stage.CONSTRUCT, Stage.TRAIN)  # where a code path chosen by the platform fails; earlier stages never reach it


# --------------------------------------------------------------------------- which cells


def eligible(cell: CellResult, fact: Fact) -> bool:
    """A measured failure at building or training, not drift, with the fact recorded off."""
    f = cell.failure
    return (cell.status == Status.INCOMPATIBLE and not cell.forced and f is not None and f.stage in STAGES
            and f.drift is None and f.fault is None and bool(f.raised_by) and cell.probe(fact.probe) == fact.off)


def site_packages(env: Path) -> Path | None:
    found = sorted(env.glob("lib/python*/site-packages"))
    return found[0] if found else None


def module_file(site: Path, raised_by: str) -> Path | None:
    """The file of the module a dotted raiser lives in: the longest prefix that is a module
    (``trl.trainer.utils.add_fused_lm_head.<locals>._fused_forward`` -> ``trl/trainer/utils.py``)."""
    parts = [p for p in raised_by.split(".") if p.isidentifier()]
    for n in range(len(parts), 0, -1):
        base = site.joinpath(*parts[:n])
        for path in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def mentions(path: Path, word: str) -> bool:
    return bool(re.search(rf"\b{re.escape(word)}\b", path.read_text(encoding="utf-8", errors="replace")))


def _installed(site: Path, dist: str, version: str) -> bool:
    name = re.sub(r"[-_.]+", "_", dist).lower()
    return any(p.name.lower().startswith(f"{name}-{version.lower()}.") for p in site.glob("*.dist-info"))


class RaiserLookup:
    """Does the raising module of a cell mention a distribution? Answered once per (raiser, release of
    its distribution), from any environment under ``roots`` holding that release (looked for again
    while unanswered: a rerun or a sync may have just built one)."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(roots)
        self.seen: dict[tuple[str, str, str], bool] = {}

    def sites(self) -> list[Path]:
        return [s for root in self.roots if root.is_dir() for env in sorted(root.iterdir())
                if (s := site_packages(env)) is not None]

    def __call__(self, cell: CellResult, word: str, extra: Path | None = None) -> bool | None:
        """True or False as read from the file; None where no environment here holds the release."""
        raised_by = (cell.failure.raised_by if cell.failure else None) or ""
        top = raised_by.split(".")[0]
        version = str(cell.environment.get(top) or "")
        key = (raised_by, version, word)
        if key in self.seen:
            return self.seen[key]
        for site in ([extra] if extra else []) + [s for s in self.sites() if version and _installed(s, top, version)]:
            path = module_file(site, raised_by)
            if path is not None:
                self.seen[key] = mentions(path, word)
                return self.seen[key]
        return None


# --------------------------------------------------------------------------- the changed environment


def required_version(envs: Envs, dist: str, torch: str) -> str:
    """The ``dist`` release PyPI's torch of the same release requires on this machine (its public
    version: ``2.13.0+cpu`` -> ``2.13.0``), read by resolving it from the index with no local wheels
    and no torch index: the index's own metadata says it, nothing is typed here."""
    public = torch.split("+")[0]
    work = envs.root.parent / "platform" / "required"
    work.mkdir(parents=True, exist_ok=True)
    req, out = work / f"torch-{public}.in", work / f"torch-{public}.txt"
    req.write_text(f"torch=={public}\n")
    step = run_uv([uv_bin(), "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python",
                   envs.settings.python, "--python-preference", "only-system", str(req), "-o", str(out)], 300)
    pins = dict(ln.split("==", 1) for ln in out.read_text().splitlines() if "==" in ln) if step.ok else {}
    if dist not in pins:
        why = first_error_line(step.output) if not step.ok else f"PyPI's torch {public} does not require {dist} here"
        raise CompatError(f"cannot tell which {dist} PyPI's torch {public} requires ({why}); pass --with {dist}==VERSION")
    return pins[dist].strip()


def lock_pins(cell: CellResult, homes: Sequence[Path], kept: Path | None) -> tuple[str, ...]:
    """The cell's pins: its lock (``locks/<lock id>.txt`` in the first of ``homes`` holding it: the results
    directory, the state directory), else the pins its environment was last synced from; none found: the
    cell's own requirements resolve afresh, as the matrix does."""
    locks = [home / "locks" / f"{cell.lock}.txt" for home in homes] if cell.lock else []
    for path in (*locks, kept):
        if path is not None and path.is_file():
            return tuple(ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
                         if ln.strip() and not ln.lstrip().startswith(("#", "-")))
    return ()


def changed_context(ctx: run.Context, fact: Fact, version: str, pins: Sequence[str]) -> run.Context:
    """The run context of a cell with the fact changed: its pins plus the distribution, in environments,
    logs and work dirs of their own (the cell's own environment and published log are never touched)."""
    extra = (*pins, f"{fact.distribution}=={version}")
    settings = replace(ctx.settings, cell_requirements=tuple(dict.fromkeys((*ctx.settings.cell_requirements, *extra))),
                       as_of_release_exempt=(*ctx.settings.as_of_release_exempt, fact.distribution))
    home = ctx.envs.root.parent / "platform" / f"{fact.distribution}-{version}"
    return replace(ctx, settings=settings, envs=Envs(home / "envs", settings), out=home / "runs", fresh=True,
                   previous={})


def plan_cell(cell: CellResult) -> Cell:
    return Cell(cell.trl, cell.transformers, cell.resolution, cell.forced, cell.trainer, released=cell.released,
                yanked=cell.yanked, declared=cell.declared)


# --------------------------------------------------------------------------- the verdict on a rerun


def moved(before: CellResult, after: CellResult) -> bool | None:
    """Did the failure move with the fact? None: the rerun measured nothing (a harness error)."""
    if after.status == Status.ERROR:
        return None
    if after.status != before.status:
        return True
    a, b = before.failure, after.failure
    if a is None or b is None:
        return (a is None) != (b is None)
    return (a.stage, first_line(a.message)) != (b.stage, first_line(b.message))


def reason(fact: Fact, version: str, after: CellResult) -> str:
    f = after.failure
    how = ("it trains" if after.status == Status.COMPATIBLE or f is None
           else f"it fails at {f.stage} instead: {first_line(f.message, 120)}")
    return f"{fact.reason} (with {fact.distribution} {version} installed {how})"


def marked(cell: CellResult, fact: Fact, version: str, after: CellResult) -> CellResult:
    """The cell as measured, with ``failure.platform`` set where the failure moved, cleared where it
    reproduced, and untouched where the rerun erred."""
    if cell.failure is None:
        return cell
    move = moved(cell, after)
    if move is None:
        return cell
    return replace(cell, failure=replace(cell.failure, platform=reason(fact, version, after) if move else None))


@dataclass(frozen=True)
class Outcome:
    cell: CellResult  # the cell as it goes back into the results
    rerun: CellResult | None  # what the rerun measured (None: not a candidate)
    why: str  # one line for the progress output


def remeasure(cells: Sequence[CellResult], fact: Fact, version: str, mentioned: Callable[[CellResult], bool | None],
              measure: Callable[[CellResult], CellResult], jobs: int = 1) -> list[Outcome]:
    """Every cell back, each candidate measured once more with the fact changed (``jobs`` at a time)."""

    def one(cell: CellResult) -> Outcome:
        if not eligible(cell, fact):
            return Outcome(cell, None, "not a candidate")
        says = mentioned(cell)
        if says is False:
            return Outcome(cell, None, f"{cell.failure.raised_by if cell.failure else '?'} does not mention "
                                       f"{fact.distribution}")
        after = measure(cell)
        out = marked(cell, fact, version, after)
        move = moved(cell, after)
        why = ("rerun erred (measured nothing): unchanged" if move is None else
               f"moved: {out.failure.platform if out.failure else ''}" if move else "reproduces: not platform-bound")
        return Outcome(out, after, why)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, cells))


def merged(cells: Sequence[CellResult], outcomes: Mapping[str, Outcome]) -> list[CellResult]:
    """The results' cells with the remeasured ones replaced; nothing else of any cell changes."""
    return [outcomes[c.id].cell if c.id in outcomes else c for c in cells]

"""The GPU check: named cells and the tiny-model memory calibration, measured on a machine with a GPU.

A lent GPU machine has no network and its own image (a CUDA torch, triton and a Python stack already
installed), and what travels to it is capped (64 MiB). So the check is prepared here and run there:

``prepare`` (here, with the index): resolves each pair as a cell would, for the machine's Python and
platform with its torch pinned, and downloads the wheels of every distribution of that resolution the
machine's image does not hold at that version (torch, triton and CUDA's own libraries are the image's).
It writes ``plan.json`` (pairs, their pins, the calibration spec) beside the wheels, and refuses a plan
over the size budget, naming the largest wheels.

``run`` (there, offline): per pair, installs the carried wheels into an overlay directory that comes
before the image's packages, runs the cell suite with the image's interpreter, and writes the cell as
the contract has it (``cells/*.json``, with the machine's torch as a further axis, so it sits beside
the published CPU cell of the pair; ``training.device`` says ``cuda`` and ``peak_memory_bytes`` is the
allocator's peak there), then runs tests/calibration/calibrate.py in the
first pair's overlay and writes the measured peaks beside the estimates (``calibration.json``). On a
machine without a GPU the same steps run on CPU: the dry run the tests drive.

Host side: subprocesses (uv, pip, the cell suite) and files only; nothing of the ML stack is imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from compat.contract import (
    AXES,
    DEFAULT_TRAINER,
    CellResult,
    CompatError,
    Failure,
    Resolution,
    Stage,
    Status,
    result_from_observations,
)
from compat.harness import suite
from compat.harness.config import Settings
from compat.harness.documents import write_cells
from compat.harness.envs import _run, first_error_line, index_args, uv_bin
from compat.harness.files import atomic_write

IMAGE = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")  # the machine's own CUDA stack: never carried
BUDGET = 56 * 2**20  # what travels is capped at 64 MiB, the checkout included
PLAN = "plan.json"
MARKER = "compat-calibration: "  # tests/calibration/calibrate.py's result line


@dataclass(frozen=True)
class Target:
    """The machine the check runs on: its Python, its platform, its torch, and what its image holds."""

    python: str  # "3.12"
    platform: str  # uv's --python-platform, e.g. "x86_64-manylinux_2_28"
    torch: str  # the image's torch, public version ("2.11.0")
    image: Mapping[str, str]  # distribution -> version the image holds (a `pip list --format=json`)


def image_of(text: str, source: str) -> dict[str, str]:
    """A `pip list --format=json` answer as {canonical name: version}."""
    try:
        listed = json.loads(text)
        return {canonicalize_name(d["name"]): str(d["version"]) for d in listed}
    except (ValueError, TypeError, KeyError) as exc:
        raise CompatError(f"{source}: not a `pip list --format=json` answer: {exc}") from None


def pins_of(text: str) -> dict[str, str]:
    return {canonicalize_name(n.strip()): v.strip() for n, _, v in
            (ln.partition("==") for ln in text.splitlines() if "==" in ln and not ln.lstrip().startswith("#"))}


def carried(pins: Mapping[str, str], image: Mapping[str, str]) -> dict[str, str]:
    """The pins the image does not hold at that version: those travel as wheels."""
    return {n: v for n, v in sorted(pins.items()) if not IMAGE.match(n) and image.get(n) != v}


_NAMED = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9._-]*)==")


def resolve(pair: tuple[str, str], settings: Settings, target: Target, work: Path) -> dict[str, str]:
    """The pair's pins as a cell resolves them, for the target's Python and platform, its torch pinned, and
    the image's versions preferred: each is a constraint until the resolver names it in a conflict (then
    that distribution resolves freely and travels as a wheel)."""
    work.mkdir(parents=True, exist_ok=True)
    req, lock, cons = work / "requirements.in", work / "requirements.txt", work / "constraints.txt"
    req.write_text("\n".join([f"trl=={pair[0]}", f"transformers=={pair[1]}", f"torch=={target.torch}",
                              *settings.cell_requirements]) + "\n")
    prefer = {n: v for n, v in target.image.items() if not IMAGE.match(n) and n not in AXES}
    for _ in range(len(prefer) + 1):
        cons.write_text("".join(f"{n}=={v}\n" for n, v in sorted(prefer.items())))
        step = _run([uv_bin(), "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python-version",
                     target.python, "--python-platform", target.platform, *index_args(settings), "--constraint",
                     str(cons), str(req), "-o", str(lock)], 300)
        if step.ok:
            return pins_of(lock.read_text())
        named = {canonicalize_name(n) for n in _NAMED.findall(step.output)} & set(prefer)
        if not named:
            break
        for name in named:
            del prefer[name]
    raise CompatError(f"trl {pair[0]} + transformers {pair[1]}: cannot resolve for Python {target.python} on "
                      f"{target.platform}: {first_error_line(step.output)}")


def download(pins: Mapping[str, str], target: Target, wheels: Path) -> None:
    """pip's wheels for the target (no dependencies: the resolution already named every one)."""
    if not pins:
        return
    wheels.mkdir(parents=True, exist_ok=True)
    tag = target.platform.replace("x86_64-", "").replace("-", "_")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
           target.python, "--implementation", "cp", "--platform", f"{tag}_x86_64", "--platform", "manylinux2014_x86_64",
           "--platform", "linux_x86_64", "--platform", "any", "-d", str(wheels),
           *(f"{n}=={v}" for n, v in pins.items())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise CompatError(f"pip download failed: {first_error_line(done.stderr or done.stdout)}")


def wheel_of(wheels: Path, name: str, version: str) -> Path | None:
    """The downloaded wheel of ``name==version`` (file names spell both their own way)."""
    for path in sorted(wheels.glob("*.whl")):
        dist, ver = path.name.split("-")[:2]
        if canonicalize_name(dist) == canonicalize_name(name) and Version(ver) == Version(version):
            return path
    return None


def prepare(pairs: Sequence[tuple[str, str]], settings: Settings, target: Target, out: Path,
            calibration: Mapping[str, Any], budget: int = BUDGET) -> dict[str, Any]:
    """Resolve, download and write ``out/plan.json``; a plan over ``budget`` bytes is refused."""
    entries = []
    for trl, tf in pairs:
        pins = resolve((trl, tf), settings, target, out / "resolve" / f"trl{trl}-tf{tf}")
        need = carried(pins, target.image)
        download(need, target, out / "wheels")
        files = {n: wheel_of(out / "wheels", n, v) for n, v in need.items()}
        missing = [f"{n}=={need[n]}" for n, f in files.items() if f is None]
        if missing:
            raise CompatError(f"trl {trl} + transformers {tf}: no wheel downloaded for {', '.join(missing)}")
        entries.append({"trl": trl, "transformers": tf, "pins": pins,
                        "wheels": sorted(f.name for f in files.values() if f is not None)})
    sizes = sorted(((p.stat().st_size, p.name) for p in (out / "wheels").glob("*.whl")), reverse=True)
    total = sum(s for s, _ in sizes)
    if total > budget:
        biggest = ", ".join(f"{n} ({s / 2**20:.1f} MiB)" for s, n in sizes[:3])
        raise CompatError(f"the plan's wheels are {total / 2**20:.1f} MiB, over the {budget / 2**20:.0f} MiB that can "
                          f"travel: largest {biggest}; list the image's packages with --image")
    plan = {"python": target.python, "platform": target.platform, "torch": target.torch, "pairs": entries,
            "calibration": dict(calibration), "wheel_bytes": total}
    atomic_write(out / PLAN, json.dumps(plan, indent=1, sort_keys=True) + "\n")
    return plan


# --------------------------------------------------------------------------- on the machine


def overlay(wheels: Sequence[Path], into: Path) -> tuple[bool, str]:
    """Install the wheels (no dependencies, no index) into a directory that goes first on PYTHONPATH, with
    this interpreter's pip (the one running the check: on the machine, the image's own)."""
    into.mkdir(parents=True, exist_ok=True)
    if not wheels:
        return True, ""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                           "--target", str(into), *map(str, wheels)], capture_output=True, text=True, timeout=600)
    return done.returncode == 0, done.stderr + done.stdout


def measure(root: Path, pair: Mapping[str, Any], plan_dir: Path, work: Path, python: str, timeout: float,
            threads: int) -> CellResult:
    """One pair's cell on this machine: the overlay, then the cell suite with this interpreter."""
    trl, tf = Version(pair["trl"]), Version(pair["transformers"])
    here = work / f"trl{trl}-tf{tf}"
    ok, said = overlay([plan_dir / "wheels" / w for w in pair["wheels"]], here / "site")
    digest = suite.suite_hash(root)
    if not ok:
        return CellResult(trl, tf, Resolution.LATEST, Status.ERROR, suite=digest,
                          failure=Failure(Stage.INSTALL, first_error_line(said), "pip", fault="tool"))
    with open(here / "suite.log", "w", encoding="utf-8") as log:
        ran = suite.run(root, Path(python).parent.parent, DEFAULT_TRAINER, here / "work", log, timeout, threads, lambda: False,
                        python=python, overlay=[here / "site"])
    obs = ran.observations
    if obs is None or "tests" not in obs or obs.get("pytest_exit") not in (0, 1):
        why = f"the cell suite did not run (exit {ran.returncode}); see {here / 'suite.log'}"
        return CellResult(trl, tf, Resolution.LATEST, Status.ERROR, suite=digest, failure=Failure(Stage.IMPORT, why, fault="harness"))
    result = result_from_observations(trl, tf, Resolution.LATEST, obs, suite=digest, peak_rss_bytes=ran.peak_rss_bytes,
                                      timings={"suite": round(ran.seconds, 2)})
    # The machine's torch is a further axis of the cell: it is another environment than the published cell
    # of the pair (a CPU torch), so merging it adds a cell beside that one and never replaces it.
    torch = result.environment.get("torch")
    return replace(result, axes={"torch": torch}) if torch else result


def calibrate(root: Path, site: Path, spec: Mapping[str, Any], python: str, timeout: float) -> list[dict[str, Any]]:
    """tests/calibration/calibrate.py in an overlay: each size's measured peak and the estimate for it."""
    from compat.memory.calibration import compared

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root)]), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "WANDB_MODE": "disabled"}
    done = subprocess.run([python, str(root / "tests" / "calibration" / "calibrate.py"), json.dumps(dict(spec))],
                          cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise CompatError(f"calibrate.py failed (exit {done.returncode}): {first_error_line(done.stderr[-2000:])}")
    runs = json.loads(line[len(MARKER):])["results"]
    for run in runs:
        estimate, measured = compared(run)
        run["estimate_bytes"], run["ratio"] = estimate, round(estimate / measured, 3) if measured else None
    return runs


CALIBRATED = 2  # the calibration runs in the first planned pairs' overlays (a fused-head and a full-logits TRL)


def run(root: Path, plan_dir: Path, out: Path, work: Path, python: str = sys.executable, timeout: float = 480,
        threads: int = 0, say: Callable[[str], None] = print) -> tuple[list[CellResult], list[dict[str, Any]]]:
    """Every planned pair, then the calibration. Only ``out/cells/*.json`` (mergeable into a published table:
    `kto-compat merge`) and ``out/calibration.json`` are written to ``out``, each as it lands (what comes back
    from a lent machine is a few files); overlays and logs stay in ``work``."""
    plan = json.loads((plan_dir / PLAN).read_text(encoding="utf-8"))
    results, runs = [], []
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, timeout=120)
    if listed.returncode == 0:  # the image as it is: what the next `prepare --image` reads
        atomic_write(out / "image.json", listed.stdout)
    threads = threads or os.cpu_count() or 1
    for pair in plan["pairs"]:
        start = time.perf_counter()
        cell = measure(root, pair, plan_dir, work, python, timeout, threads)
        results.append(cell)
        write_cells(out, [cell])
        t = cell.training or {}
        say(f"compat: gpu-check: {cell.id}: {cell.status}"
            + (f" at {cell.failure.stage}: {cell.failure.message.splitlines()[0][:160]}" if cell.failure else "")
            + f"; device {t.get('device')}, peak {t.get('peak_memory_bytes')} bytes ({time.perf_counter() - start:.0f}s)")
    for pair, cell in list(zip(plan["pairs"], results, strict=True))[:CALIBRATED]:
        if cell.status == Status.ERROR:
            continue
        site = work / f"trl{Version(pair['trl'])}-tf{Version(pair['transformers'])}" / "site"
        for r in calibrate(root, site, plan["calibration"], python, timeout):
            runs.append({"trl": pair["trl"], "transformers": pair["transformers"], **r})
            say(f"compat: gpu-check: calibration {cell.id} {r['params'] / 1e6:.1f}M on {r['device']}: measured "
                f"{r['peak_bytes']} bytes, estimate {r['estimate_bytes']} (ratio {r['ratio']})")
        atomic_write(out / "calibration.json", json.dumps({"runs": runs}, indent=1, sort_keys=True) + "\n")
    return results, runs

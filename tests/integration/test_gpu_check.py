"""The GPU check (issue 21 item 7) end to end on CPU: the dry run of the script a lent GPU machine runs.

The "image" is a real cell environment the harness builds (trl 0.12.2 + transformers 4.46.3, torch
2.13.0+cpu); `gpu-check prepare` resolves trl 0.12.0 + transformers 4.46.3 against it and downloads the
one wheel the image lacks, and `gpu-check run` overlays it, runs the real cell suite with the image's
interpreter and the calibration, offline. On a GPU machine the same commands record device cuda and the
allocator's peak. Needs the package index (for the environment and the wheel).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from compat.contract import Status
from compat.harness import config as cfg
from compat.harness.documents import load_cell, load_document
from compat.harness.envs import Envs, first_error_line, uv_bin
from compat.harness.lock import shared_env
from compat.harness.plan import Cell

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.integration


def compat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compat", *args], cwd=ROOT, capture_output=True, text=True, timeout=1500)


def test_the_gpu_check_runs_end_to_end_on_cpu_and_writes_mergeable_cells(tmp_path):
    settings = cfg.load(ROOT / "matrix.toml").settings
    envs = Envs(ROOT / ".compat" / "envs", settings)
    image_cell = Cell(Version("0.12.2"), Version("4.46.3"))
    resolved, lock = envs.resolve(image_cell, tmp_path / "image-resolve")
    assert resolved.ok, first_error_line(resolved.output)
    envs.root.mkdir(parents=True, exist_ok=True)
    with shared_env(envs.root / image_cell.env_id):
        installed, env_dir, _ = envs.ensure(image_cell, lock)
    assert installed.ok, first_error_line(installed.output)
    python = env_dir / "bin" / "python"
    listed = subprocess.run([uv_bin(), "pip", "list", "--python", str(python), "--format", "json"], capture_output=True,
                            text=True, timeout=120)
    (tmp_path / "image.json").write_text(listed.stdout)

    plan, out = tmp_path / "plan", tmp_path / "out"
    prepared = compat("gpu-check", "prepare", "--out", str(plan), "--pair", "trl==0.12.0,transformers==4.46.3",
                      "--image", str(tmp_path / "image.json"), "--python", "3.11", "--torch", settings.torch,
                      "--calibration", "tiny")
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    (pair,) = json.loads((plan / "plan.json").read_text())["pairs"]
    assert [w.split("-")[:2] for w in pair["wheels"]] == [["trl", "0.12.0"]]  # all else is the image's

    ran = compat("gpu-check", "run", "--plan", str(plan), "--out", str(out), "--work", str(tmp_path / "work"),
                 "--python", str(python))
    assert ran.returncode == 0, ran.stderr[-3000:]
    (path,) = (out / "cells").glob("*.json")
    cell = load_cell(path)
    assert cell.id == path.stem == f"trl0.12.0-tf4.46.3-torch{cell.environment['torch']}"  # the machine's torch: an axis
    assert cell.status == Status.COMPATIBLE, cell.failure
    assert cell.environment["trl"] == "0.12.0" and cell.environment["transformers"] == "4.46.3"  # the overlay won
    assert cell.training["device"] == "cpu" and cell.training["peak_memory_bytes"] > 0  # "cuda" on a GPU
    assert len(cell.training["losses"]) >= 3
    (run,) = json.loads((out / "calibration.json").read_text())["runs"]
    assert run["device"] == "cpu" and run["peak_bytes"] > 0 and run["estimate_bytes"] > 0
    assert (run["trl"], run["transformers"]) == ("0.12.0", "4.46.3")
    # Mergeable: `kto-compat merge` takes the cells as they are.
    merged = compat("merge", str(out), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert [c.id for c in load_document(tmp_path / "merged" / "compat.json").cells] == [cell.id]

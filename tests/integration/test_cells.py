"""Real cells through the whole pipeline: real releases from the index, real KTO steps.

Slow (a minute or two per trained cell) and needs the package index.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.integration

PAIRS = {
    "old": "trl==0.12.2,transformers==4.46.3",
    "new": "trl==1.16.0,transformers==5.23.0",
    "refused": "trl==1.16.0,transformers==4.45.2",
    "breaks": "trl==0.12.2,transformers==4.45.2",
}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reports")


@pytest.fixture(scope="module")
def compat_json(out_dir) -> dict:
    out = out_dir
    cmd = [sys.executable, "-m", "compat", "matrix", "--fresh", "--out", str(out)]
    for pair in PAIRS.values():
        cmd += ["--only", pair]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "COMPAT.md").exists()
    return {f"trl=={c['trl']},transformers=={c['transformers']}": c for c in json.loads((out / "compat.json").read_text())["cells"]}


@pytest.mark.parametrize("which", ["old", "new"])
def test_trained_cells_are_compatible(compat_json, which):
    cell = compat_json[PAIRS[which]]
    assert cell["status"] == "compatible", cell["failure"]
    assert cell["keyword"]["processing_class"] == "accepted"
    t = cell["training"]
    assert t["dtype"] == "bfloat16" and t["steps"] >= 3
    assert len(t["losses"]) >= 3 and all(math.isfinite(x) for x in t["losses"])
    assert cell["environment"]["trl"] == PAIRS[which].split(",")[0].split("==")[1]
    # the legacy-style script trained through the adapter package and through an exported file
    assert (cell["adapter"], cell["adapter_outcome"]) == ("pass", "trained")
    assert cell["formatter"]["adapter"] and set(cell["formatter"]["adapter"].values()) == {"pass"}


def test_refused_pair_is_unresolvable_with_resolver_reason(compat_json):
    cell = compat_json[PAIRS["refused"]]
    assert cell["status"] == "unresolvable"
    assert cell["failure"]["stage"] == "resolve"
    assert "transformers" in cell["failure"]["message"] and "unsatisfiable" in cell["failure"]["message"]


def test_pair_that_installs_but_breaks_names_transformers_trainer(compat_json):
    cell = compat_json[PAIRS["breaks"]]
    assert cell["status"] == "incompatible"
    assert cell["failure"]["stage"] == "construct"
    assert cell["failure"]["raised_by"] == "transformers.trainer.Trainer.__init__"
    assert "processing_class" in cell["failure"]["message"]
    assert cell["keyword"]["processing_class"] == "rejected"
    assert (cell["adapter"], cell["adapter_outcome"]) == ("pass", "refused")  # refused with advice, up front


def test_check_inside_broken_env_exits_nonzero_with_pip_command(compat_json, out_dir, tmp_path):
    findings = tmp_path / "findings.json"
    gen = subprocess.run([sys.executable, "-m", "compat", "findings", "--report", str(out_dir / "compat.json"), "-o", str(findings)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    env_python = ROOT / ".compat" / "envs" / "trl0.12.2-tf4.45.2" / "bin" / "python"
    proc = subprocess.run([str(env_python), "-m", "compat", "check", "--findings", str(findings)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pip install 'trl==0.12.2' 'transformers==4.46.3'" in proc.stdout  # a pair this very run measured compatible

"""Real cells through the whole pipeline: real releases from the index, real KTO steps.

Slow (a minute or two per trained cell) and needs the package index.
"""

from __future__ import annotations

import json
import math
import os
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
}


@pytest.fixture(scope="module")
def compat_json(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("reports")
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


def test_refused_pair_is_unresolvable_with_resolver_reason(compat_json):
    cell = compat_json[PAIRS["refused"]]
    assert cell["status"] == "unresolvable"
    assert cell["failure"]["stage"] == "resolve"
    assert "transformers" in cell["failure"]["message"] and "unsatisfiable" in cell["failure"]["message"]

"""A published lock reproduces its cell: `kto-compat lock PAIR` from the package alone, `uv pip sync` into a fresh
environment, and what got installed equals the lock, and the cell's published environment, exactly.

Real installs from the package index (torch's CPU build from PIP_FIND_LINKS where set: download.pytorch.org is
not reachable from every machine). No trl/transformers mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from compat.harness import locks
from compat.harness.documents import load_document
from compat.harness.envs import uv_bin

ROOT = Path(__file__).parents[2]
PUBLISHED = ROOT / "docs" / "compat"
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (PUBLISHED / "locks").is_dir(),
                                 reason="docs/compat has no locks/ yet: the table predates locks (they are published "
                                        "with the next full rerun)")]

# The cell the issue names, and three more from different TRL minors, old to new.
CELLS = ["trl==0.11.4,transformers==4.45.2,resolution=as-of-release", "trl==0.12.2,transformers==4.46.3",
         "trl==1.4.0,transformers==4.57.6", "trl==1.16.0,transformers==5.23.0"]


def published_cell(pair: str):
    fields = dict(part.split("=", 1) for part in pair.replace("==", "=").split(","))
    doc = load_document(PUBLISHED / "compat.json")
    return next(c for c in doc.cells if (str(c.trl), str(c.transformers), c.resolution, c.trainer) ==
                (fields["trl"], fields["transformers"], fields.get("resolution", "latest"), "kto"))


def installed(python: Path) -> dict[str, str]:
    code = ("import json, importlib.metadata as m; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    # Run outside the checkout: `-c` puts the working directory on sys.path, and a checkout's metadata would count.
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, cwd=python.parents[2])
    assert proc.returncode == 0, proc.stderr
    return {canonicalize_name(k): v for k, v in json.loads(proc.stdout).items()}


@pytest.mark.parametrize("pair", CELLS)
def test_a_published_lock_installs_exactly_its_cells_environment(tmp_path, pair):
    cell = published_cell(pair)
    assert cell.status == "compatible" and cell.lock, cell.id
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    lock = subprocess.run([sys.executable, "-m", "compat", "lock", pair, *(["--torch-from", links[0]] if links else [])],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert lock.returncode == 0, lock.stderr
    pins = locks.pins(lock.stdout)
    # The package's lock is the published one: the same pins as docs/compat/locks/<the cell's lock>.txt.
    assert pins == locks.pins(locks.read(PUBLISHED, cell.lock))
    (tmp_path / "lock.txt").write_text(lock.stdout)
    uv, env = uv_bin(), tmp_path / "env"
    for cmd in ([uv, "venv", "-q", "--python-preference", "only-system", str(env)],
                [uv, "pip", "sync", "-q", "--python", str(env / "bin" / "python"), str(tmp_path / "lock.txt")]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-2000:]
    here = installed(env / "bin" / "python")
    assert here == pins  # every distribution of the lock at its version, and nothing else
    recorded = {canonicalize_name(k): v for k, v in cell.environment.items() if k != "python"}
    assert {k: here.get(k) for k in recorded} == recorded  # what the cell's suite recorded importing
    proc = subprocess.run([str(env / "bin" / "python"), "-c", "from trl import KTOTrainer; print(KTOTrainer.__name__)"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "KTOTrainer", proc.stderr[-2000:]

"""Real cells through the whole pipeline: real releases from the index, real KTO (and DPO) steps.

Slow (a minute or two cold) and needs the package index. No trl/transformers mocks anywhere.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat.harness.envs import uv_bin
from compat.harness.suite import suite_hash

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
    from compat.harness.documents import load_document  # expands the compact document back into full cells

    out = out_dir
    cmd = [sys.executable, "-m", "compat", "matrix", "--fresh", "--out", str(out)]
    for pair in PAIRS.values():
        cmd += ["--only", pair]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "COMPAT.md").exists()
    cells = load_document(out / "compat.json").cells
    return {f"trl=={c.trl},transformers=={c.transformers}": c.serialize() for c in cells}


@pytest.mark.parametrize("which", ["old", "new"])
def test_trained_cells_are_compatible(compat_json, which):
    cell = compat_json[PAIRS[which]]
    assert cell["status"] == "compatible", cell["failure"]
    assert cell["keyword"]["processing_class"] == "accepted"
    t = cell["training"]
    assert t["dtype"] == "bfloat16" and t["steps"] >= 3
    assert len(t["losses"]) >= 3 and all(math.isfinite(x) for x in t["losses"])
    assert cell["environment"]["trl"] == PAIRS[which].split(",")[0].split("==")[1]
    # the example script trained every boundary row through an exported adapter with this cell's findings
    assert (cell["adapter"], cell["adapter_outcome"]) == ("pass", "trained")
    assert "boundary rows" in cell["adapter_detail"]["trained"]
    assert cell["tests"]["failed"] == [] and cell["tests"]["passed"] > 30
    assert cell["probes"]["batch_size_one"] in ("accepted", "rejected")
    assert cell["suite"] == suite_hash(ROOT)  # every cell records the suite it ran under


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
    gen = subprocess.run([sys.executable, "-m", "compat", "findings", "--results", str(out_dir), "-o", str(findings)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    env_python = ROOT / ".compat" / "envs" / "trl0.12.2-tf4.45.2" / "bin" / "python"
    proc = subprocess.run([str(env_python), "-m", "compat", "check", "--findings", str(findings)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "measured BROKEN" in proc.stdout  # this environment is the one the cell measured failing
    # the fix reproduces a cell this very run measured compatible: its lock, every distribution pinned
    assert "kto-compat lock trl==0.12.2,transformers==4.46.3 > lock.txt && uv pip sync lock.txt" in proc.stdout


def test_check_run_passes_in_a_compatible_cells_environment(compat_json, out_dir, tmp_path):
    """`check --run` runs the real cell suite in the Python it is given, installing nothing, and its
    verdict (here: the cell's own) is trusted over the table: exit 0."""
    findings = tmp_path / "findings.json"
    subprocess.run([sys.executable, "-m", "compat", "findings", "--results", str(out_dir), "-o", str(findings)],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    env_python = ROOT / ".compat" / "envs" / "trl0.12.2-tf4.46.3" / "bin" / "python"
    proc = subprocess.run([str(env_python), "-m", "compat", "check", "--run", "--findings", str(findings)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--run PASSED here" in proc.stdout and "built with processing_class=" in proc.stdout


def test_check_names_pyarrow_and_run_finds_the_real_root_cause(tmp_path):
    """The environment uv made for `torch trl==0.11.4 transformers==4.45.2` (datasets 2.14.4, pyarrow 26.0.1):
    the table measured the pair compatible as of its release, so `check` names what differs (exit 3);
    `check --run` finds that TRL cannot even import there, raised in datasets by pyarrow's removed
    PyExtensionType (exit 1). Pinned here so the environment does not move with the index."""
    env_dir = _venv(tmp_path, "torch==2.13.0\ntrl==0.11.4\ntransformers==4.45.2\ndatasets==2.14.4\npyarrow==26.0.1\n"
                              "pytest==8.4.2\npackaging\n")
    python = str(env_dir / "bin" / "python")
    proc = subprocess.run([python, "-m", "compat", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "datasets: measured with 3.0.1, you have 2.14.4" in proc.stdout
    assert "pyarrow: measured with 17.0.0, you have 26.0.1" in proc.stdout
    proc = subprocess.run([python, "-m", "compat", "check", "--run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "at the 'import' stage: AttributeError: module 'pyarrow' has no attribute 'PyExtensionType'" in proc.stdout
    assert "raised by: datasets." in proc.stdout


def _venv(tmp_path: Path, requirements: str) -> Path:
    """A fresh environment holding exactly what ``requirements`` resolves to (uv, this machine's find-links)."""
    uv = uv_bin()
    req, lock, env_dir = tmp_path / "req.in", tmp_path / "req.txt", tmp_path / "env"
    req.write_text(requirements)
    links = [a for link in os.environ.get("PIP_FIND_LINKS", "").split() for a in ("--find-links", link)]
    for cmd in ([uv, "pip", "compile", "-q", "--python-preference", "only-system", *links, str(req), "-o", str(lock)],
                [uv, "venv", "-q", "--python-preference", "only-system", str(env_dir)],
                [uv, "pip", "sync", "-q", "--python", str(env_dir / "bin" / "python"), *links, str(lock)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return env_dir


def test_a_dpo_cell_from_a_config_with_trainers_dpo(tmp_path):
    """The second trainer is one spec plus its cell tests: a config naming it yields a DPO cell."""
    config = tmp_path / "matrix.toml"
    text = (ROOT / "matrix.toml").read_text().replace('trainers = ["kto"]', 'trainers = ["dpo"]', 1)
    assert 'trainers = ["dpo"]' in text
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the index listing cache and the environments live beside the config: reuse the project's
    (ROOT / ".compat").mkdir(exist_ok=True)
    (tmp_path / ".compat").symlink_to(ROOT / ".compat", target_is_directory=True)
    proc = subprocess.run([sys.executable, "-m", "compat", "matrix", "--config", str(config), "--only", PAIRS["new"],
                           "--out", str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [cell] = json.loads((tmp_path / "out" / "compat.json").read_text())["cells"]
    assert (cell["trainer"], cell["status"]) == ("dpo", "compatible"), cell["failure"]
    assert cell["keyword"]["processing_class"] == "accepted"
    assert cell["training"]["dtype"] == "bfloat16" and cell["training"]["steps"] >= 3


def test_exported_adapter_on_an_unmeasured_pair_no_keyword_can_build(tmp_path):
    """trl 0.11.4 with transformers 5.x (rich added, which today's tyro no longer brings): no cell
    measured it, and the adapter's introspection of the whole constructor chain says no tokenizer
    keyword can work, naming both classes that refuse one, instead of a bare TypeError."""
    env_dir = _venv(tmp_path, "trl==0.11.4\ntransformers==5.0.0\ntorch==2.13.0\nrich\n")
    export = tmp_path / "kto_compat.py"
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps({"schema_version": 2, "facts": {}, "working": [["0.12.2", "4.46.3"]]}))
    gen = subprocess.run([sys.executable, "-m", "compat", "export-adapter", "--findings", str(findings), "-o", str(export)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    probe = ("import warnings; warnings.simplefilter('ignore'); import kto_compat\n"
             "try:\n    kto_compat.make_kto_trainer(model=None, args=None, train_dataset=None, tokenizer=object())\n"
             "except kto_compat.BrokenPairError as exc:\n    print(exc)\n")
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no tokenizer keyword can build KTOTrainer" in proc.stdout
    assert "trl.trainer.kto_trainer.KTOTrainer.__init__ does not take processing_class=" in proc.stdout
    assert "transformers.trainer.Trainer.__init__ does not take tokenizer=" in proc.stdout
    assert "pip install 'trl==0.12.2' 'transformers==4.46.3'" in proc.stdout


def test_readme_states_the_default_matrix_as_planned_today():
    """The README's size of the default matrix is what planning against the index gives (needs the index)."""
    import re

    from compat.harness import config, index, plan

    cells = plan.plan(config.load(ROOT / "matrix.toml"), "default", index.lister(ROOT / "matrix.toml"))
    readme = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"default matrix \((\d+) KTO cells: (\d+) pairs, (\d+) of them also resolved as of their release\)", readme)
    assert m, "the README states the default matrix's size"
    stated = tuple(map(int, m.groups()))
    assert stated == (len(cells), len({(c.trl, c.transformers) for c in cells}),
                      sum(c.resolution == "as-of-release" for c in cells))


def test_the_readme_snippet_runs_as_written_on_a_compatible_pair(compat_json, out_dir, tmp_path):
    """The README's adapter snippet, copied as a user would, next to an exported adapter holding this
    run's findings, trains on the compatible pair; the only warning the adapter adds on CPU is use_cpu."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Using the adapter in a training script"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)[1]
    (tmp_path / "train.py").write_text(snippet)
    findings = tmp_path / "findings.json"
    subprocess.run([sys.executable, "-m", "compat", "findings", "--results", str(out_dir), "-o", str(findings)],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    subprocess.run([sys.executable, "-m", "compat", "export-adapter", "--findings", str(findings), "-o",
                    str(tmp_path / "kto_compat.py")], cwd=ROOT, check=True, capture_output=True, timeout=60)
    env_python = ROOT / ".compat" / "envs" / "trl0.12.2-tf4.46.3" / "bin" / "python"
    proc = subprocess.run([str(env_python), "-W", "default", "train.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'train_loss'" in proc.stdout + proc.stderr
    adapter_warnings = re.findall(r"AdapterWarning: (.*)", proc.stderr)
    if not Path("/proc/driver/nvidia/version").exists():  # the README's words for a machine without CUDA
        assert adapter_warnings == ["make_kto_config: no CUDA device: setting use_cpu=True so bf16 runs as CPU autocast"]

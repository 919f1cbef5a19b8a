"""The composite action (action.yml) a training project's CI uses: zizmor-clean, and its own steps,
run with bash as GitHub runs them, install kto-compat and answer with check's exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="pyyaml (the test extra) reads action.yml")

REPO = Path(__file__).parents[2]
ACTION = REPO / "action.yml"


def test_zizmor_offline_finds_nothing():
    zizmor = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    if not Path(zizmor).exists():
        pytest.skip("zizmor (the test extra) is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    proc = subprocess.run([zizmor, "--offline", "--no-progress", str(ACTION)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0 and "No findings" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def run_step(step: dict, tmp_path: Path, inputs: dict[str, str]) -> subprocess.CompletedProcess:
    """One `run:` step, its ${{ }} expressions only ever in `env:` (zizmor keeps them out of scripts);
    setup-python's output is this Python 3.11."""
    env = {**os.environ, "GITHUB_ACTION_PATH": str(REPO), "RUNNER_TEMP": str(tmp_path / "runner"),
           "GITHUB_OUTPUT": str(tmp_path / "output")}
    outputs = {"steps.python.outputs.python-path": shutil.which("python3.11") or sys.executable}
    for name, value in (step.get("env") or {}).items():
        key = value.removeprefix("${{ ").removesuffix(" }}")
        env[name] = outputs[key] if key in outputs else inputs.get(key.removeprefix("inputs."), "")
    assert "${{" not in step["run"]
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_steps_install_kto_compat_and_exit_with_checks_codes(tmp_path):
    action = yaml.safe_load(ACTION.read_text())
    setup, install, check = action["runs"]["steps"]
    assert setup["uses"].startswith("actions/setup-python@") and setup["with"]["python-version"] == "3.11"
    (tmp_path / "runner").mkdir()
    proc = run_step(install, tmp_path, {})
    assert proc.returncode == 0, proc.stderr[-2000:]
    cases = {"broken.txt": ("trl==0.12.2\ntransformers==4.45.2\n", "false", 1),
             "works.txt": ("trl==0.12.2\ntransformers==4.46.3\n", "false", 0),
             "bad.txt": ("trl==0.12.2\ntransformers===\n", "false", 2),
             "new.txt": ("trl==99.0.0\ntransformers==4.46.3\n", "false", 3),
             "allowed.txt": ("trl==99.0.0\ntransformers==4.46.3\n", "true", 0)}
    for name, (text, allow, code) in cases.items():
        (tmp_path / name).write_text(text)
        (tmp_path / "output").write_text("")
        proc = run_step(check, tmp_path, {"requirements": name, "allow-unmeasured": allow})
        assert proc.returncode == code, (name, proc.stdout, proc.stderr)
        expected = 3 if name == "allowed.txt" else code
        assert (tmp_path / "output").read_text() == f"exit-code={expected}\n", name

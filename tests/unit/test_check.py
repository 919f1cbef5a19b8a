from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from compat.harness import findings
from compat.contract import CellResult, Failure

REPO = Path(__file__).parents[2]
RESULTS = [
    CellResult("0.12.2", "4.46.3", "latest", "compatible", keyword={"processing_class": "accepted", "tokenizer": "accepted"}, import_path="trl", format_mode="text"),
    CellResult("0.12.2", "4.45.2", "latest", "incompatible",
               failure=Failure("construct", "TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'", "transformers.trainer.Trainer.__init__")),
]


def run_check(tmp_path: Path, pair: str, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "findings.json"
    path.write_text(findings.dumps(findings.build(RESULTS)))
    return subprocess.run([sys.executable, "-m", "compat", "check", "--findings", str(path), "--pair", pair, *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_broken_pair_exits_nonzero_with_pip_command(tmp_path):
    proc = run_check(tmp_path, "trl==0.12.2,transformers==4.45.2")
    assert proc.returncode == 1
    assert "fails at the 'construct' stage" in proc.stdout and "transformers.trainer.Trainer.__init__" in proc.stdout
    assert "pip install 'trl==0.12.2' 'transformers==4.46.3'" in proc.stdout


def test_compatible_and_unmeasured_and_json(tmp_path):
    ok = run_check(tmp_path, "trl==0.12.2,transformers==4.46.3")
    assert ok.returncode == 0 and "processing_class=" in ok.stdout
    unknown = run_check(tmp_path, "trl==0.15.0,transformers==4.50.0", "--json")
    data = json.loads(unknown.stdout)
    # The adapter's fallback for unmeasured pairs reads every constructor of KTOTrainer's chain (it used bind_partial).
    assert unknown.returncode == 0 and data["status"] == "unmeasured" \
        and "every constructor in KTOTrainer's chain" in data["adapter_plan"]
    broken = json.loads(run_check(tmp_path, "trl==0.12.2,transformers==4.45.2", "--json").stdout)
    assert broken["exit_code"] == 1 and broken["broken"]["stage"] == "construct"
    assert broken["evidence"] == "measured"  # a cell ran this very pair


def test_a_pair_that_is_not_one_kto_pair_names_the_form_check_takes(tmp_path):
    """check answers for one KTOTrainer pair: a row, a column, a mode or another trainer is refused with the
    form check itself takes (not --only's), under the program's own name, exit 2."""
    for pair in ("bogus", "trl==1.0.0", "trl==1.0.0,transformers==5.0.0,trainer=dpo",
                 "trl==1.0.0,transformers==5.0.0,resolution=as-of-release"):
        proc = run_check(tmp_path, pair)
        assert proc.returncode == 2 and proc.stdout == ""
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"python -m compat: error: --pair {pair!r}: expected 'trl==A,transformers==B'"), line
        assert "row or column" not in line and "resolution=MODE" not in line
    proc = run_check(tmp_path, "trl==x,transformers==4.46.3")
    assert proc.returncode == 2 and "trl 'x' is not a version" in proc.stderr


def test_errors_carry_the_installed_command_name():
    from compat.cli import main

    assert main.prog_name("/venv/bin/kto-compat") == "kto-compat" and main.prog_name("-m") == "python -m compat"
    proc = subprocess.run([sys.executable, "-c", "import sys; from compat.cli.main import main; "
                           "sys.argv[0] = '/venv/bin/kto-compat'; sys.exit(main(['check', '--pair', 'bogus']))"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("kto-compat: error: --pair 'bogus'"), proc.stderr


def test_terminal_escapes_in_findings_are_shown_inert(tmp_path):
    hostile = "\x1b]52;c;ZXZpbA==\x07\x1b[2J boom"  # OSC 52 (write the clipboard), then clear the screen
    path = tmp_path / "findings.json"
    bad = [RESULTS[0], CellResult("0.12.2", "4.45.2", "latest", "incompatible",
                                  failure=Failure("construct", hostile, "trl.\x1b[31mKTOTrainer"))]
    path.write_text(findings.dumps(findings.build(bad)))
    proc = subprocess.run([sys.executable, "-m", "compat", "check", "--findings", str(path), "--pair",
                           "trl==0.12.2,transformers==4.45.2"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "boom" in proc.stdout
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout


def test_an_installed_trl_whose_version_is_not_pep_440_is_one_line(tmp_path):
    for name, version in (("trl", "banana"), ("transformers", "4.46.3")):
        info = tmp_path / "site" / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    proc = subprocess.run([sys.executable, "-m", "compat", "check"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": f"{tmp_path / 'site'}:{REPO}", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "'banana'" in proc.stderr, proc.stderr

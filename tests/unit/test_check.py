from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compat.cli import check as check_mod
from compat.contract import CellResult, Drift, Failure
from compat.harness import environments as envs
from compat.harness import findings

REPO = Path(__file__).parents[2]
STACK = {"python": "3.11.7", "torch": "2.13.0+cpu", "datasets": "3.0.1", "pyarrow": "17.0.0", "accelerate": "1.0.1"}
OLD_STACK = {**STACK, "rich": "13.9.2", "tyro": "0.8.12"}
RESULTS = [
    CellResult("0.12.2", "4.46.3", "latest", "compatible", keyword={"processing_class": "accepted", "tokenizer": "accepted"},
               import_path="trl", format_mode="text",
               environment={**STACK, "trl": "0.12.2", "transformers": "4.46.3"}),
    CellResult("0.12.2", "4.45.2", "latest", "incompatible",
               failure=Failure("construct", "TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'", "transformers.trainer.Trainer.__init__"),
               environment={**STACK, "trl": "0.12.2", "transformers": "4.45.2"}),
    CellResult("0.11.4", "4.45.2", "as-of-release", "compatible", keyword={"processing_class": "rejected", "tokenizer": "accepted"},
               import_path="trl", format_mode="text",
               environment={**OLD_STACK, "trl": "0.11.4", "transformers": "4.45.2"}),
    CellResult("0.11.4", "4.45.2", "latest", "incompatible",
               failure=Failure("import", "ModuleNotFoundError: No module named 'rich'", "trl.trainer.utils.<module>",
                               drift=Drift("undeclared-dependency", "rich", "trl.trainer.utils")),
               environment={**STACK, "datasets": "5.0.1", "tyro": "1.0.17", "trl": "0.11.4", "transformers": "4.45.2"}),
]
FIXED = "'trl==0.12.2' 'transformers==4.46.3' 'torch==2.13.0+cpu'"  # the working cell's reproducing line


@pytest.fixture()
def findings_file(tmp_path: Path) -> Path:
    path = tmp_path / "findings.json"
    path.write_text(findings.dumps(findings.build(RESULTS)))
    return path


def run_check(findings_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compat", "check", "--findings", str(findings_file), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_broken_pair_exits_1_with_the_nearest_working_cells_reproducing_line(findings_file):
    proc = run_check(findings_file, "--pair", "trl==0.12.2,transformers==4.45.2")
    assert proc.returncode == 1
    assert "fails at the 'construct' stage" in proc.stdout and "transformers.trainer.Trainer.__init__" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("to reproduce the nearest one:"))
    assert FIXED in line and "--extra-index-url https://download.pytorch.org/whl/cpu" in line
    assert "'datasets==3.0.1'" in line and "'pyarrow==17.0.0'" in line  # every recorded distribution pinned


def test_compatible_unmeasured_beyond_every_release_and_json(findings_file):
    ok = run_check(findings_file, "--pair", "trl==0.12.2,transformers==4.46.3")
    assert ok.returncode == 0 and "processing_class=" in ok.stdout and FIXED in ok.stdout
    unknown = run_check(findings_file, "--pair", "trl==0.15.0,transformers==4.50.0", "--json")
    data = json.loads(unknown.stdout)
    assert unknown.returncode == 3 and data["exit_code"] == 3 and data["status"] == "unmeasured"
    assert "every constructor in KTOTrainer's chain" in data["adapter_plan"]
    future = run_check(findings_file, "--pair", "trl==99.0.0,transformers==1.0.0")
    assert future.returncode == 3
    assert "trl 99.0.0 is newer than every release measured (newest: 0.12.2)" in future.stdout
    assert "transformers 1.0.0 is older than every release measured (oldest: 4.45.2)" in future.stdout
    broken = json.loads(run_check(findings_file, "--pair", "trl==0.12.2,transformers==4.45.2", "--json").stdout)
    assert broken["exit_code"] == 1 and broken["broken"]["stage"] == "construct" and broken["evidence"] == "measured"


def test_the_drifted_pair_offers_the_environment_that_passed(findings_file):
    """0.11.4 x 4.45.2 trains as of its release and fails with today's resolution: not a plain yes (exit 3), and
    the line shown under its compatible answer pins the environment that passed (rich, tyro), not the bare pair."""
    proc = run_check(findings_file, "--pair", "trl==0.11.4,transformers==4.45.2")
    assert proc.returncode == 3, proc.stdout
    assert "with its dependencies resolved latest, this pair was measured failing at import" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("install line (the measured environment"))
    assert "'rich==13.9.2'" in line and "'tyro==0.8.12'" in line


def test_help_documents_the_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "compat", "check", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    for code in ("0  measured compatible", "1  broken", "3  not measured", "2  bad input"):
        assert code in proc.stdout


# --------------------------------------------------------------------------- the installed environment


def installed(**versions: str) -> dict[str, list[str]]:
    return {"python": ["3.11.9"], **{k: [v] for k, v in versions.items()}}


def report_for(findings_file: Path, here: dict[str, list[str]], gpu: str | None = None) -> check_mod.CheckReport:
    check_mod._findings(findings_file)
    table = envs.measured(json.loads(findings_file.read_text()))
    pair = (here["trl"][0], here["transformers"][0])
    return check_mod.against(check_mod.check(pair, table), table, here, complete=True, gpu=gpu)


def test_an_environment_matching_the_compatible_cell_exits_0(findings_file):
    here = installed(trl="0.12.2", transformers="4.46.3", torch="2.13.0+cpu", datasets="3.0.1", pyarrow="17.0.0",
                     accelerate="1.0.1", tzdata="2026.1")
    r = report_for(findings_file, here)
    assert (r.status, r.exit_code, r.differences) == ("compatible", 0, [])


def test_a_differing_run_time_distribution_is_named_and_exits_3(findings_file):
    """The pyarrow case: datasets and pyarrow differ from the cell that passed; `check` says so, exit 3."""
    here = installed(trl="0.11.4", transformers="4.45.2", torch="2.13.0+cpu", datasets="2.14.4", pyarrow="26.0.1",
                     accelerate="1.0.1", tyro="0.8.12")
    r = report_for(findings_file, here)
    assert r.exit_code == 3 and r.cell["resolution"] == "as-of-release"
    words = {d["name"]: d["words"] for d in r.differences}
    assert words["datasets"] == "datasets: measured with 3.0.1, you have 2.14.4"
    assert words["pyarrow"] == "pyarrow: measured with 17.0.0, you have 26.0.1"
    assert words["rich"] == "rich: measured with 13.9.2, not installed here"
    assert check_mod.render(r).splitlines()[0].endswith(": compatible only as measured: your environment differs from "
                                                          "the measured environment where that can change the verdict "
                                                          "(`kto-compat check --run` measures yours).")


def test_the_environment_a_failing_cell_measured_is_broken(findings_file):
    here = installed(trl="0.11.4", transformers="4.45.2", torch="2.13.0+cpu", datasets="5.0.1", pyarrow="17.0.0",
                     accelerate="1.0.1", tyro="1.0.17")
    r = report_for(findings_file, here)
    assert (r.status, r.evidence, r.exit_code) == ("broken", "measured", 1)
    assert "No module named 'rich'" in r.broken["message"]


def test_torch_builds_are_told_apart(findings_file):
    here = installed(trl="0.12.2", transformers="4.46.3", torch="2.13.0", datasets="3.0.1", pyarrow="17.0.0",
                     accelerate="1.0.1")
    r = report_for(findings_file, here)
    assert r.exit_code == 3
    assert [d["words"] for d in r.differences] == [
        "torch: measured with 2.13.0+cpu (the CPU build), you have 2.13.0 (PyPI's default build)"]


def test_a_gpu_machine_is_not_what_cpu_cells_measured(findings_file):
    here = installed(trl="0.12.2", transformers="4.46.3", torch="2.13.0+cpu", datasets="3.0.1", pyarrow="17.0.0",
                     accelerate="1.0.1")
    r = report_for(findings_file, here, gpu="an NVIDIA GPU")
    assert r.exit_code == 3
    assert [d["name"] for d in r.differences] == ["device"]
    assert "no cell measured" in r.differences[0]["words"]


# --------------------------------------------------------------------------- --requirements


def test_requirements_txt_pinning_a_broken_pair_exits_1_with_the_fix(findings_file, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# training deps\ntrl==0.12.2\ntransformers==4.45.2  # pinned\ntorch==2.13.0\n")
    proc = run_check(findings_file, "--requirements", str(req))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BROKEN" in proc.stdout and FIXED in proc.stdout


def test_requirements_txt_pinning_a_compatible_pair_exits_0(findings_file, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.12.2\ntransformers==4.46.3\ndatasets==3.0.1\n")
    proc = run_check(findings_file, "--requirements", str(req))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "left open, resolved when you install: accelerate, pyarrow, torch" in proc.stdout


def test_a_pinned_difference_from_the_measured_cell_exits_3(findings_file, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.12.2\ntransformers==4.46.3\ndatasets==2.14.4\n")
    proc = run_check(findings_file, "--requirements", str(req))
    assert proc.returncode == 3 and "datasets: measured with 3.0.1, your pins say 2.14.4" in proc.stdout


def test_pins_of_the_environment_a_failing_cell_measured_are_broken(findings_file, tmp_path):
    """Pins equal to every distribution the failing (latest) cell of a drifted pair recorded: exit 1 with that
    cell's own failure, not the compatible answer of its as-of-release twin."""
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.11.4\ntransformers==4.45.2\ntorch==2.13.0+cpu\ndatasets==5.0.1\npyarrow==17.0.0\n"
                   "accelerate==1.0.1\ntyro==1.0.17\n")
    proc = run_check(findings_file, "--requirements", str(req))
    assert proc.returncode == 1, proc.stdout
    assert "fails at the 'import' stage" in proc.stdout and "No module named 'rich'" in proc.stdout


def test_loose_pins_of_a_drifted_pair_are_not_a_plain_yes(findings_file, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.11.4\ntransformers==4.45.2\n")
    proc = run_check(findings_file, "--requirements", str(req))
    assert proc.returncode == 3, proc.stdout
    assert "left open, and resolved latest this pair was measured failing at import" in proc.stdout


def test_hashed_lines_keep_their_markers(tmp_path):
    from compat.cli import requirements

    (tmp_path / "requirements.txt").write_text(
        'numpy==1.26.4 ; python_version < "3.0" \\\n  --hash=sha256:abc\n'
        'numpy==2.1.2 ; python_version >= "3.0" --hash=sha256:def --hash=sha256:0123\n'
        "flash-attn==2.6.3 --no-build-isolation\n-e git+https://example.invalid/x.git#egg=x\n.\n./wheels/y.whl\n"
        "trl @ https://example.invalid/trl-0.12.2-py3-none-any.whl\n-rother.txt\ntransformers==4.46.3\t# pinned\n")
    (tmp_path / "other.txt").write_text("tokenizers==0.20.3\n")
    pins = requirements.read(tmp_path / "requirements.txt")
    assert {k: p.exact for k, p in pins.items()} == {"numpy": "2.1.2", "flash-attn": "2.6.3", "trl": "0.12.2",
                                                     "tokenizers": "0.20.3", "transformers": "4.46.3"}


def test_a_missing_include_names_the_including_line(tmp_path):
    from compat.cli import requirements
    from compat.harness.config import ConfigError

    (tmp_path / "requirements.txt").write_text("trl==0.12.2\n-r nope.txt\n")
    with pytest.raises(ConfigError, match=r"requirements.txt:2: .*nope.txt: not a file"):
        requirements.read(tmp_path / "requirements.txt")


def test_a_range_skips_pairs_the_resolver_refuses(tmp_path):
    results = [*RESULTS, CellResult("0.12.2", "4.47.1", "latest", "unresolvable",
                                    failure=Failure("resolve", "No solution found when resolving dependencies"))]
    path = tmp_path / "findings.json"
    path.write_text(findings.dumps(findings.build(results)))
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.12.2\ntransformers>=4.46,<4.48\n")
    proc = run_check(path, "--requirements", str(req), "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and [p["transformers"] for p in data["pairs"]] == ["4.46.3"]


def test_a_range_admitting_several_measured_releases_answers_each(findings_file, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.12.2\ntransformers>=4.45,<4.47\n")
    proc = run_check(findings_file, "--requirements", str(req), "--json")
    data = json.loads(proc.stdout)
    assert [p["transformers"] for p in data["pairs"]] == ["4.45.2", "4.46.3"]
    assert data["exit_code"] == proc.returncode == 1  # the worst answer wins


@pytest.mark.parametrize("name, text", [
    ("pyproject.toml", '[project]\nname = "x"\ndependencies = ["trl==0.12.2", "transformers==4.45.2"]\n'),
    ("uv.lock", 'version = 1\n[[package]]\nname = "trl"\nversion = "0.12.2"\n[[package]]\nname = "transformers"\nversion = "4.45.2"\n'),
    ("poetry.lock", '[[package]]\nname = "TRL"\nversion = "0.12.2"\n[[package]]\nname = "transformers"\nversion = "4.45.2"\n'),
])
def test_pyproject_and_locks_are_read(findings_file, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    proc = run_check(findings_file, "--requirements", str(path))
    assert proc.returncode == 1 and "fails at the 'construct' stage" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("name, text, where", [
    ("requirements.txt", "trl==0.12.2\ntransformers===\n", "requirements.txt:2: not a requirement"),
    ("pyproject.toml", "[project\n", "pyproject.toml: not TOML"),
    ("pyproject.toml", '[project]\ndependencies = ["trl==0.12.2", 5]\n', "pyproject.toml: project.dependencies[1]: expected a requirement string"),
    ("uv.lock", '[[package]]\nname = "trl"\nversion = "x"\n', "uv.lock: package[0]: trl 'x' is not a version"),
])
def test_bad_requirement_files_are_one_line_exit_2(findings_file, tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    proc = run_check(findings_file, "--requirements", str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert where in line, line


@pytest.mark.parametrize("text, words", [
    ("transformers==4.46.3\n", "has no requirement on trl: which trl gets installed decides the answer"),
    ("trl>=50\ntransformers==4.46.3\n", "trl >=50 admits no release kto-compat measured (measured: 0.11.4 to 0.12.2)"),
])
def test_files_the_table_cannot_answer_for_exit_3(findings_file, tmp_path, text, words):
    req = tmp_path / "requirements.txt"
    req.write_text(text)
    proc = run_check(findings_file, "--requirements", str(req))
    assert proc.returncode == 3 and words in proc.stdout, proc.stdout + proc.stderr


def test_requirements_includes_continuations_and_markers(tmp_path):
    from compat.cli import requirements

    (tmp_path / "base.txt").write_text("transformers==4.46.3 \\\n  --hash=sha256:abc\n")
    (tmp_path / "requirements.txt").write_text("-r base.txt\n--index-url https://example.invalid/simple\n"
                                               "trl==0.12.2 ; python_version >= '3'\nfoo==1 ; python_version < '3'\n")
    pins = requirements.read(tmp_path / "requirements.txt")
    assert {k: p.exact for k, p in pins.items()} == {"transformers": "4.46.3", "trl": "0.12.2"}


def test_poetry_constraints():
    from compat.cli.requirements import poetry_constraint

    def spec(text: str) -> list[str]:
        return [str(s) for s in poetry_constraint(text, "x")]

    assert spec("^0.12.1") == ["<0.13,>=0.12.1"] and spec("~4.46") == ["<4.47,>=4.46"]
    assert spec("4.46.3") == ["==4.46.3"] and spec("=0.12.2") == ["==0.12.2"] and spec("0.12.*") == ["==0.12.*"]
    assert spec(">=0.12.0 <0.13.0") == ["<0.13.0,>=0.12.0"] and spec("^0.12.2 || ^0.13") == ["<0.13,>=0.12.2", "<0.14,>=0.13"]


def test_locks_skip_dynamic_versions_and_keep_forks(tmp_path):
    from compat.cli import requirements

    (tmp_path / "uv.lock").write_text('version = 1\n[[package]]\nname = "me"\nsource = { editable = "." }\n'
                                      '[[package]]\nname = "numpy"\nversion = "1.26.4"\n'
                                      '[[package]]\nname = "numpy"\nversion = "2.1.2"\n')
    pins = requirements.read(tmp_path / "uv.lock")
    assert set(pins) == {"numpy"} and pins["numpy"].exacts == ("1.26.4", "2.1.2") and pins["numpy"].exact is None


def test_a_pair_that_is_not_one_kto_pair_names_the_form_check_takes(findings_file):
    """check answers for one KTOTrainer pair: a row, a column, a mode or another trainer is refused with the
    form check itself takes (not --only's), under the program's own name, exit 2."""
    for pair in ("bogus", "trl==1.0.0", "trl==1.0.0,transformers==5.0.0,trainer=dpo",
                 "trl==1.0.0,transformers==5.0.0,resolution=as-of-release"):
        proc = run_check(findings_file, "--pair", pair)
        assert proc.returncode == 2 and proc.stdout == ""
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"python -m compat: error: --pair {pair!r}: expected 'trl==A,transformers==B'"), line
        assert "row or column" not in line and "resolution=MODE" not in line
    proc = run_check(findings_file, "--pair", "trl==x,transformers==4.46.3")
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


# --------------------------------------------------------------------------- platform-bound failures

ON_CPU = "triton is not importable with this torch build (with triton 3.7.1 installed it fails at train instead: RuntimeError: 0 active drivers)"
BOUND = CellResult("1.15.0", "5.16.1", "latest", "incompatible",
                   failure=Failure("train", "AttributeError: 'NoneType' object has no attribute 'apply'",
                                   "trl.trainer.utils.add_fused_lm_head.<locals>._fused_forward", platform=ON_CPU),
                   environment={**STACK, "trl": "1.15.0", "transformers": "5.16.1"})


@pytest.fixture()
def bound_findings(tmp_path: Path) -> Path:
    path = tmp_path / "findings.json"
    path.write_text(findings.dumps(findings.build([*RESULTS, BOUND])))
    return path


def test_a_platform_bound_failure_is_a_platform_fact_never_broken(bound_findings):
    data = json.loads(bound_findings.read_text())
    assert not [r for r in data["facts"]["broken"] if "1.15.0" in r["trl"]]
    check_mod._findings(bound_findings)  # the adapter reads the same findings: it must not refuse the pair
    assert check_mod.adapter.lookup("broken", ("1.15.0", "5.16.1")) is None
    assert check_mod.adapter.lookup("broken", ("0.12.2", "4.45.2")) is not None
    (rule,) = data["facts"]["platform"]
    assert (rule["trl"], rule["value"]["reason"], rule["value"]["stage"]) == ("==1.15.0", ON_CPU, "train")
    assert [c[6] for c in data["environments"]["cells"] if c[0] == "1.15.0"][0][3] == ON_CPU


def test_check_on_cpu_says_it_fails_on_this_platform_with_the_reason(bound_findings):
    proc = run_check(bound_findings, "--pair", "trl==1.15.0,transformers==5.16.1")
    assert proc.returncode == 1, proc.stdout
    first = proc.stdout.splitlines()[0]
    assert "measured to FAIL ON THIS PLATFORM (CPU) at the 'train' stage: triton is not importable" in first
    assert "Not broken as a pair" in first and "BROKEN" not in proc.stdout
    assert "load_kto() does not refuse it" in proc.stdout


def test_check_on_a_gpu_machine_says_the_pair_was_not_measured_there(bound_findings, monkeypatch):
    monkeypatch.setattr(envs, "local_gpu", lambda: "an NVIDIA GPU")
    args = check_mod_args(bound_findings, pair="trl==1.15.0,transformers==5.16.1")
    (r,) = check_mod.reports_for(args)
    assert (r.status, r.exit_code) == ("platform", 3)
    assert check_mod.render(r).splitlines()[0].endswith(
        "NOT MEASURED on this machine (an NVIDIA GPU): every cell of it ran on CPU, where it fails at the 'train' "
        f"stage for a reason of the platform, not of the pair: {ON_CPU}.")


def test_the_environment_a_platform_bound_cell_measured_fails_on_cpu_not_broken(bound_findings):
    here = installed(trl="1.15.0", transformers="5.16.1", torch="2.13.0+cpu", datasets="3.0.1", pyarrow="17.0.0",
                     accelerate="1.0.1")
    r = report_for(bound_findings, here)
    assert (r.status, r.evidence, r.exit_code, r.platform["reason"]) == ("platform", "measured", 1, ON_CPU)
    on_gpu = report_for(bound_findings, here, gpu="an NVIDIA GPU")
    assert (on_gpu.status, on_gpu.exit_code) == ("platform", 3)


def check_mod_args(findings_file: Path, pair: str):
    import argparse

    return argparse.Namespace(findings=findings_file, pair=pair, requirements=None, run=False, json=False)

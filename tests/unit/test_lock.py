"""Each cell's lock: carried with its cell (merge, report, findings), printed by `kto-compat lock`, and the
line every report shows reproduces it. Fake cells and `uv pip compile`-shaped locks (tests/unit/lockdata.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lockdata import ELSEWHERE, lock_text, locked, write_locks
from packaging.requirements import Requirement

from compat.cell.validate import SchemaError, validate
from compat.contract import CellResult, Failure
from compat.harness import environments as envs
from compat.harness import findings, locks
from compat.harness.config import ConfigError
from compat.harness.documents import dumps_document, schema
from compat.harness.reports import html, markdown

REPO = Path(__file__).parents[2]
STACK = {"python": "3.11.7", "torch": "2.13.0+cpu", "datasets": "3.0.1", "pyarrow": "17.0.0", "accelerate": "1.0.1"}


def cell(trl: str, tf: str, status: str = "compatible", resolution: str = "latest", **kw) -> CellResult:
    env = {} if status == "unresolvable" else {**STACK, "trl": trl, "transformers": tf, **kw.pop("extra", {})}
    failure = Failure("resolve", "No solution found") if status == "unresolvable" else \
        Failure("construct", "TypeError: unexpected keyword argument 'processing_class'") if status == "incompatible" else None
    return locked(CellResult(trl, tf, resolution, status, environment=env, failure=failure,
                             released="2024-10-15T08:44:57Z", **kw))


CELLS = [cell("0.12.2", "4.46.3"), cell("0.12.2", "4.45.2", "incompatible"),
         cell("0.11.4", "4.45.2", resolution="as-of-release", extra={"rich": "13.9.2"}),
         cell("0.12.2", "4.46.3", trainer="dpo"),  # the same environment as the KTO cell: one lock, stored once
         cell("1.0.0", "4.45.2", "unresolvable")]


def report_dir(path: Path, cells: list[CellResult], with_locks: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "compat.json").write_text(dumps_document({"profile": "default", "generated": "2026-12-01T00:00:00Z"}, cells))
    if with_locks:
        write_locks(path, cells)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "compat", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- the lock files


def test_identical_locks_are_stored_once_and_stale_ones_go(tmp_path):
    src = report_dir(tmp_path / "src", CELLS)
    out = tmp_path / "out"
    (out / "locks").mkdir(parents=True)
    (out / "locks" / "0123456789abcdef.txt").write_text("old==1\n")  # a lock no cell names any more
    assert locks.carry([src], out, CELLS) == 3  # 4 installed cells, the KTO and DPO cells share one environment
    assert sorted(p.stem for p in (out / "locks").iterdir()) == sorted({c.lock for c in CELLS if c.lock})
    assert CELLS[0].lock == CELLS[3].lock and CELLS[4].lock is None
    assert (out / "locks" / f"{CELLS[0].lock}.txt").read_text() == lock_text(CELLS[0].environment)


def test_a_lock_no_input_holds_or_whose_pins_were_edited_is_refused(tmp_path):
    src = report_dir(tmp_path / "src", CELLS)
    (src / "locks" / f"{CELLS[2].lock}.txt").unlink()
    with pytest.raises(ConfigError, match=rf"cell trl0.11.4-tf4.45.2-as-of-release names lock {CELLS[2].lock}, which none"):
        locks.carry([src], tmp_path / "out", CELLS)
    assert not (tmp_path / "out" / "locks").exists()  # refused before anything is written
    write_locks(src, CELLS)
    (src / "locks" / f"{CELLS[2].lock}.txt").write_text("trl==0.11.4\n")
    with pytest.raises(ConfigError, match=rf"its pins hash to [0-9a-f]{{16}}, not {CELLS[2].lock} \(edited or corrupt\)"):
        locks.carry([src], tmp_path / "out", CELLS)
    with pytest.raises(ConfigError, match="not 16 hex digits"):
        locks.path(src, "../../etc/passwd")


def test_pins_are_read_from_a_lock():
    text = "# header\n--find-links https://example.invalid/\nTorch==2.13.0+cpu\ntyping_extensions==4.16.0  # via x\n\n"
    assert locks.pins(text) == {"torch": "2.13.0+cpu", "typing-extensions": "4.16.0"}


def test_the_schema_takes_a_lock_id_and_nothing_else():
    data = CELLS[0].serialize()
    validate(data, {**schema("compat")["$defs"]["cell"], "$defs": schema("compat")["$defs"]}, "cell")
    with pytest.raises(SchemaError):
        validate({**data, "lock": "not-a-lock"}, {**schema("compat")["$defs"]["cell"], "$defs": schema("compat")["$defs"]},
                 "cell")


# --------------------------------------------------------------------------- publishing carries them


def test_merge_publishes_each_cells_lock_once_and_refuses_a_shard_missing_one(tmp_path):
    a = report_dir(tmp_path / "shard-1", CELLS[:2])
    b = report_dir(tmp_path / "shard-2", CELLS[2:])
    proc = run("merge", str(a), str(b), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 0, proc.stderr
    merged = tmp_path / "merged"
    named = {c["lock"] for c in json.loads((merged / "compat.json").read_text())["cells"] if c.get("lock")}
    assert named == {p.stem for p in (merged / "locks").iterdir()} and len(named) == 3
    (b / "locks" / f"{CELLS[2].lock}.txt").unlink()
    proc = run("merge", str(a), str(b), "--out", str(tmp_path / "merged2"))
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert f"cell trl0.11.4-tf4.45.2-as-of-release names lock {CELLS[2].lock}" in line and "shard-2" in line


def test_report_into_another_directory_takes_the_locks_along(tmp_path):
    src = report_dir(tmp_path / "src", CELLS)
    proc = run("report", "--results", str(src), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert {p.stem for p in (tmp_path / "out" / "locks").iterdir()} == {c.lock for c in CELLS if c.lock}
    assert "kto-compat lock trl==0.12.2,transformers==4.46.3 > lock.txt && uv pip sync lock.txt" in \
        (tmp_path / "out" / "COMPAT.md").read_text()


def test_findings_ship_the_locks_beside_them_and_lock_reads_them(tmp_path):
    src = report_dir(tmp_path / "docs", CELLS)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    proc = run("findings", "--results", str(src), "-o", str(pkg / "findings.json"))
    assert proc.returncode == 0 and "3 locks in" in proc.stderr, proc.stderr
    rows = json.loads((pkg / "findings.json").read_text())["environments"]["cells"]
    assert {r[7] for r in rows if len(r) > 7} == {p.stem for p in (pkg / "locks").iterdir()}
    assert {r[8] for r in rows if len(r) > 8} == {"kto", "dpo"}
    out = run("lock", "trl==0.11.4,transformers==4.45.2,resolution=as-of-release", "--findings", str(pkg / "findings.json"))
    assert out.returncode == 0, out.stderr
    assert locks.pins(out.stdout) == locks.pins(lock_text(CELLS[2].environment))


# --------------------------------------------------------------------------- kto-compat lock


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    pkg = tmp_path_factory.mktemp("pkg")
    (pkg / "findings.json").write_text(findings.dumps(findings.build(CELLS)))
    write_locks(pkg, CELLS)
    return pkg / "findings.json"


def test_lock_prints_a_requirements_file_naming_the_cell(shipped):
    proc = run("lock", "trl==0.12.2,transformers==4.46.3", "--findings", str(shipped))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "# kto-compat lock trl==0.12.2,transformers==4.46.3"
    assert f"lock {CELLS[0].lock}" in lines[1] and "compatible" in lines[1] and "Python 3.11.7" in lines[2]
    # torch's CPU build from PyTorch's page of torch wheels alone (as the harness installs it): nothing else can
    # come from there, which an extra index would allow under uv's first-index strategy.
    assert "--find-links https://download.pytorch.org/whl/cpu/torch/" in lines
    reqs = [Requirement(ln) for ln in lines if ln and not ln.startswith(("#", "--"))]  # each line pip and uv parse
    assert {r.name: str(r.specifier) for r in reqs} == {k: f"=={v}" for k, v in locks.pins(
        lock_text(CELLS[0].environment)).items()}
    assert {"torch", "trl", "transformers", *ELSEWHERE} <= {r.name for r in reqs}


def test_lock_takes_the_suffixes_and_another_torch_source(shipped):
    dpo = run("lock", "trl==0.12.2,transformers==4.46.3,trainer=dpo", "--findings", str(shipped), "--torch-from", "/opt/wheels")
    assert dpo.returncode == 0 and "--find-links /opt/wheels" in dpo.stdout and "download.pytorch.org" not in dpo.stdout
    assert dpo.stdout.splitlines()[0] == "# kto-compat lock trl==0.12.2,transformers==4.46.3,trainer=dpo"
    aor = run("lock", "trl==0.11.4,transformers==4.45.2,resolution=as-of-release", "--findings", str(shipped))
    assert aor.returncode == 0 and "rich==13.9.2" in aor.stdout.splitlines()


@pytest.mark.parametrize("pair, words", [
    ("trl==9.9.9,transformers==4.46.3", "trl==9.9.9,transformers==4.46.3: the table has no installed cell for it"),
    ("trl==1.0.0,transformers==4.45.2", "trl==1.0.0,transformers==4.45.2: the table has no installed cell for it with "
                                        "a lock: the resolver refused it"),
    ("trl==0.11.4,transformers==4.45.2", "no installed cell for it (trainer kto, resolution latest); it was measured "
                                         "with resolution=as-of-release"),
    ("trl==0.12.2", "PAIR 'trl==0.12.2': name both trl==A and transformers==B"),
    ("trl==0.12.2,transformers==4.46.3,resolution=someday", "unknown resolution 'someday'"),
])
def test_lock_without_an_installed_cell_exits_2_naming_the_pair(shipped, pair, words):
    proc = run("lock", pair, "--findings", str(shipped))
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert words in line, line


# --------------------------------------------------------------------------- the lines people copy


def test_every_line_shown_reproduces_the_cell_from_its_lock():
    ok, broken, aor, _, refused = (envs.from_result(c) for c in CELLS)
    assert envs.install_line(ok) == "kto-compat lock trl==0.12.2,transformers==4.46.3 > lock.txt && uv pip sync lock.txt"
    assert envs.install_line(aor) == ("kto-compat lock trl==0.11.4,transformers==4.45.2,resolution=as-of-release > lock.txt "
                                      "&& uv pip sync lock.txt")
    assert envs.human_line(aor) == "uv pip install --exclude-newer 2024-10-16T08:44:57Z 'trl==0.11.4' 'transformers==4.45.2'"
    assert envs.human_line(ok) is None
    assert envs.install_line(refused) == "pip install 'trl==1.0.0' 'transformers==4.45.2'"  # reproduces the refusal
    page = html.page_data(CELLS, {})
    by_id = {c["id"]: c for c in page["cells"]}
    assert by_id[CELLS[1].id]["pip"] == envs.install_line(broken) and by_id[CELLS[1].id]["lock"] == CELLS[1].lock
    assert by_id[CELLS[2].id]["resolved"] == envs.human_line(aor) and "resolved" not in by_id[CELLS[0].id]
    md = markdown.document(CELLS, {"profile": "default"})
    assert ("`kto-compat lock trl==0.11.4,transformers==4.45.2,resolution=as-of-release > lock.txt && uv pip sync "
            "lock.txt` (resolved as `uv pip install --exclude-newer 2024-10-16T08:44:57Z 'trl==0.11.4' "
            "'transformers==4.45.2'`)") in md


# --------------------------------------------------------------------------- what the stack uses at run time


def test_the_run_time_closure_follows_requirements_markers_and_extras():
    meta = {
        "trl": ["accelerate>=0.34", "datasets>=2.21", "rich", "deepspeed ; extra == 'deepspeed'"],
        "transformers": ["huggingface-hub<1.0,>=0.23", "tokenizers<0.21,>=0.20", "torch ; extra == 'torch'",
                         "pywin32 ; sys_platform == 'win32'"],
        "accelerate": ["torch>=1.10.0", "huggingface-hub"],
        "datasets": ["pyarrow>=15.0.0", "fsspec[http]<=2024.6.1"],
        "fsspec": ["aiohttp ; extra == 'http'", "pytest ; extra == 'test'"],
        "huggingface-hub": ["tqdm"], "rich": ["markdown-it-py>=2.2.0", "pygments<3.0.0,>=2.13.0"],
    }
    reached = envs.reach(requires=meta.get)
    assert reached == {"trl", "transformers", "accelerate", "datasets", "rich", "huggingface-hub", "tokenizers", "torch",
                       "pyarrow", "fsspec", "aiohttp", "tqdm", "markdown-it-py", "pygments"}
    assert not reached & {"deepspeed", "pywin32", "pytest"}  # extras not asked for, markers false here


def test_the_run_time_closure_of_this_python_is_read_from_metadata():
    reached = envs.reach(("pytest",))  # installed here with the test extra
    assert {"pytest", "pluggy", "iniconfig", "packaging"} <= reached and "trl" not in reached


def test_the_adapters_advice_quotes_the_working_cells_reproducing_line(monkeypatch):
    """findings.json's `install` holds, for each working pair whose cell has a lock, the line that reproduces it; the
    adapter's BrokenPairError advice quotes it for the nearest working pair."""
    from compat.cell import adapter

    data = findings.build(CELLS)
    assert data["install"] == {
        "trl==0.12.2,transformers==4.46.3": "kto-compat lock trl==0.12.2,transformers==4.46.3 > lock.txt && uv pip sync lock.txt"}
    monkeypatch.setattr(adapter, "FINDINGS", json.loads(findings.dumps(data)))
    adapter.findings.cache_clear()
    try:
        lines = adapter._nearest_lines(("0.12.2", "4.45.2"))
    finally:
        adapter.findings.cache_clear()
    assert lines[-1] == ("To move to the nearest one: kto-compat lock trl==0.12.2,transformers==4.46.3 > lock.txt "
                         "&& uv pip sync lock.txt")

"""Bad input, interruption, concurrency and network faults, through the real CLI.

uv is replaced by tests/unit/fake_uv.py (COMPAT_UV) except in the network
test, which points real uv at an index on a closed local port.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fakeproject
import pytest
from packaging.version import Version

from compat.harness import run
from compat.harness.config import Settings
from compat.harness.envs import Envs
from compat.harness.plan import Cell

REPO = Path(__file__).parents[2]
MATRIX = fakeproject.matrix((["0.12.*", "1.0.0"], ["4.46.3"]), cell_timeout=60)


@pytest.fixture
def project(tmp_path: Path):
    return fakeproject.make(tmp_path, MATRIX, ["0.12.0", "0.12.2", "1.0.0"], ["4.46.3", "5.0.0"])


def compat(project: Path, *args: str, sleep: float = 0, wait: bool = True, **env: str):
    environ = {**os.environ, "PYTHONPATH": str(REPO), "COMPAT_UV": str(project / "uv"), "FAKE_CELL_SLEEP": str(sleep), **env}
    cmd = [sys.executable, "-m", "compat", *args, "--config", str(project / "matrix.toml")]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True, timeout=120)


def test_fake_run_writes_reports(project):
    proc = compat(project, "matrix", "--out", str(project / "out"))
    assert proc.returncode == 0, proc.stderr
    cells = json.loads((project / "out" / "compat.json").read_text())["cells"]
    assert [(c["trl"], c["status"]) for c in cells] == [("0.12.2", "compatible"), ("1.0.0", "compatible")]


def test_a_rerun_sets_up_from_the_known_pins_while_resolving_even_after_collection(project):
    """A --fresh rerun runs the suite before the resolver's answer is logged (speculation); so does
    one after its environment was collected, rebuilt from the pins kept beside the environments."""
    def order(out: Path) -> list[str]:
        log = (out / "logs" / "trl0.12.2-tf4.46.3.log").read_text()
        return [line.split(" (")[0] for line in log.splitlines() if line.startswith("$ ")]

    assert compat(project, "matrix", "--out", str(project / "cold")).returncode == 0
    assert order(project / "cold") == ["$ uv pip compile", "$ uv venv + pip sync"]
    assert compat(project, "matrix", "--fresh", "--out", str(project / "warm")).returncode == 0
    assert order(project / "warm") == ["$ uv venv + pip sync", "$ uv pip compile"]
    for env in (project / ".compat" / "envs").iterdir():
        if env.is_dir():
            subprocess.run(["rm", "-rf", str(env)], check=True)  # what collection does
    proc = compat(project, "matrix", "--fresh", "--out", str(project / "collected"))
    assert proc.returncode == 0, proc.stderr
    assert order(project / "collected") == ["$ uv venv + pip sync", "$ uv pip compile"]
    cells = json.loads((project / "collected" / "compat.json").read_text())["cells"]
    assert {c["status"] for c in cells} == {"compatible"} and all(c["timings"]["install"] > 0 for c in cells)


def test_report_rerenders_without_rewriting_the_measured_document(project):
    out = project / "out"
    assert compat(project, "matrix", "--out", str(out)).returncode == 0
    measured = (out / "compat.json").read_bytes()
    (out / "COMPAT.md").unlink()
    proc = fakeproject.compat(project, "report", "--results", str(out), config=False)
    assert proc.returncode == 0, proc.stderr
    assert (out / "compat.json").read_bytes() == measured and (out / "COMPAT.md").exists()
    other = project / "rendered"
    assert fakeproject.compat(project, "report", "--results", str(out), "--out", str(other), config=False).returncode == 0
    before, after = json.loads(measured), json.loads((other / "compat.json").read_text())
    # A rendering adds no timestamp of its own; rendered where the logs are not, it links none.
    assert all("log" in c for c in before["cells"]) and not any("log" in c for c in after["cells"])
    assert after == {**before, "cells": [{k: v for k, v in c.items() if k != "log"} for c in before["cells"]]}
    for source in (out, out / "compat.json"):  # findings read a results dir or a compat.json itself
        written = project / f"findings-{source.name}.json"
        assert fakeproject.compat(project, "findings", "--results", str(source), "-o", str(written), config=False).returncode == 0
    assert (project / "findings-out.json").read_text() == (project / "findings-compat.json.json").read_text()


BAD = [
    ("syntax", lambda p: (p / "matrix.toml").write_text("[settings\n"), [], "TOML syntax error"),
    ("unknown key", lambda p: (p / "matrix.toml").write_text(MATRIX + "\n[extra]\n"), [], "unknown key 'extra'"),
    ("bad specifier", lambda p: (p / "matrix.toml").write_text(MATRIX.replace('"0.12.*"', '"=>0.12"')), [], "invalid version specifier '=>0.12'"),
    ("missing version", lambda p: (p / "matrix.toml").write_text(MATRIX.replace('"1.0.0"', '"1.0.7"')), [], "version 1.0.7 does not exist"),
    ("empty axis", lambda p: (p / "matrix.toml").write_text(MATRIX.replace('["4.46.3"]', "[]")), [], "axis is empty"),
    ("python", lambda p: (p / "matrix.toml").write_text(MATRIX.replace('"3.11"', '"3.2"')), [], "Python 3.2 is not available"),
    ("profile", lambda p: None, ["--profile", "nightly"], "unknown profile 'nightly'"),
    ("only", lambda p: None, ["--only", "trl=0.12.2"], "--only 'trl=0.12.2': expected 'trl==A,transformers==B'"),
    ("shard", lambda p: None, ["--shard", "3/2"], "--shard '3/2'"),
    ("unwritable", lambda p: None, ["--out", "/proc/version/out"], "--out /proc/version/out: directory is not writable"),
]


@pytest.mark.parametrize(("name", "prepare", "extra", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_clear_line_and_keeps_results(project, name, prepare, extra, needle):
    out = project / "out"
    good = compat(project, "matrix", "--out", str(out))
    assert good.returncode == 0
    before = (out / "compat.json").read_bytes()
    prepare(project)
    args = ["matrix", "--out", str(out), *extra] if "--out" not in extra else ["matrix", *extra]
    proc = compat(project, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert (out / "compat.json").read_bytes() == before


def test_sigterm_keeps_finished_cells_records_running_and_rerun_resumes(project):
    out = project / "out"
    proc = compat(project, "matrix", "--out", str(out), "-j", "1", sleep=3, wait=False)
    deadline = time.time() + 60
    while not (out / "cells" / "trl0.12.2-tf4.46.3.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the second cell is now running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    cells = {c["trl"]: c for c in json.loads((out / "compat.json").read_text())["cells"]}
    assert cells["0.12.2"]["status"] == "compatible"
    assert cells["1.0.0"]["status"] == "error" and cells["1.0.0"]["failure"]["stage"] == "interrupted"
    rerun = compat(project, "matrix", "--out", str(out))
    assert rerun.returncode == 0
    assert "trl0.12.2-tf4.46.3: compatible (cached)" in rerun.stderr
    assert "start trl1.0.0-tf4.46.3" in rerun.stderr and "start trl0.12.2" not in rerun.stderr


def test_second_run_on_same_results_dir_refuses(project):
    out = project / "out"
    first = compat(project, "matrix", "--out", str(out), "--fresh", sleep=4, wait=False)
    deadline = time.time() + 30
    while not (out / ".compat.lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    second = compat(project, "matrix", "--out", str(out))
    assert second.returncode == 2
    assert "another compat run" in second.stderr and str(first.pid) in second.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_corrupt_cached_result_is_rerun_not_trusted(project):
    out = project / "out"
    assert compat(project, "matrix", "--out", str(out)).returncode == 0
    for p in (project / ".compat" / "results").glob("*.json"):
        p.write_text(p.read_text()[:30])  # truncated mid-write
    again = compat(project, "matrix", "--out", str(out))
    assert again.returncode == 0 and again.stderr.count("start ") == 2


@pytest.mark.needs("uv")
def test_unreachable_index_is_error_with_retries_never_incompatible(tmp_path, monkeypatch):
    """Real uv against an index URL on a closed local port."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("COMPAT_UV", raising=False)
    settings = Settings()
    ctx = run.Context(root=tmp_path, out=tmp_path / "out", settings=settings, envs=Envs(tmp_path / "envs", settings),
                      cache_dir=tmp_path / "cache", suite="s", retries=2, backoff=0.01)
    cells = [Cell(Version("0.12.2"), Version("4.46.3")), Cell(Version("1.0.0"), Version("4.46.3"))]
    results = run.run_all(ctx, cells, 1, run.Reporter(2, io.StringIO()))
    assert [r.status for r in results] == ["error", "error"]  # both tried: one fault doesn't stop the others
    assert all(r.failure.stage == "resolve" and "127.0.0.1:9" in r.failure.message for r in results)
    log = (tmp_path / "out" / results[0].log).read_text()
    assert "attempt 3" in log
    assert not list((tmp_path / "cache").glob("*.json"))


@pytest.fixture
def private_index():
    """A PEP 691 index on loopback that answers only to user:s3cret (Basic auth), as a private mirror does."""
    import base64
    import http.server
    import threading

    listing = {"trl": fakeproject.listing("0.12.2", "1.0.0"), "transformers": fakeproject.listing("4.46.3")}
    wanted = "Basic " + base64.b64encode(b"user:s3cret").decode()

    class Private(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.strip("/").split("/")[-1]
            if self.headers.get("Authorization") != wanted:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps(listing.get(name, {"files": []})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Private)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def test_an_index_url_with_credentials_works_and_never_prints_the_password(tmp_path, private_index):
    root = fakeproject.make(tmp_path, fakeproject.matrix((["1.0.0"], ["4.46.3"])), [], [])
    shutil.rmtree(root / ".compat" / "index")  # nothing cached: the planner must read the private index itself
    ok = compat(root, "list", PIP_INDEX_URL=f"http://user:s3cret@127.0.0.1:{private_index}/simple")
    assert ok.returncode == 0 and ok.stdout.split() == ["trl1.0.0-tf4.46.3"], ok.stderr
    shutil.rmtree(root / ".compat" / "index")
    bad = compat(root, "list", PIP_INDEX_URL=f"http://user:wrong-pw@127.0.0.1:{private_index}/simple")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "401" in bad.stderr, bad.stderr
    assert "wrong-pw" not in bad.stderr + bad.stdout and "user:****@" in bad.stderr


def test_uv_output_carrying_an_index_password_is_redacted():
    from compat.harness.envs import _run

    step = _run([sys.executable, "-c", "import sys; sys.stderr.write('error: GET https://me:hunter2@idx/simple/trl/ 500')"], 30)
    assert "hunter2" not in step.output and "https://me:****@idx" in step.output


def test_kill_9_of_the_harness_leaves_no_cell_suite_running(project):
    from compat.harness import orphans

    harness = compat(project, "matrix", "--out", str(project / "out"), "--only", "trl==1.0.0,transformers==4.46.3",
                     sleep=60, wait=False)
    running = project / ".compat" / "running"
    deadline = time.monotonic() + 60
    while not list(running.glob("*.pid")):
        assert harness.poll() is None and time.monotonic() < deadline, harness.communicate()
        time.sleep(0.05)
    session = int(next(running.glob("*.pid")).stem)
    assert orphans._members(session)  # the suite is running
    harness.kill()  # SIGKILL: no handler, no cleanup
    harness.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while session in orphans._members(session):  # the suite's own process dies with its parent (PDEATHSIG)
        assert time.monotonic() < deadline, "the cell suite outlived the harness"
        time.sleep(0.05)
    left = orphans._members(session)  # the fake suite's `sleep` child: PDEATHSIG does not reach grandchildren
    again = compat(project, "matrix", "--out", str(project / "out"), "--only", "trl==1.0.0,transformers==4.46.3")
    assert again.returncode == 0, again.stderr
    assert ("ended 1 cell suite(s)" in again.stderr) == bool(left), (left, again.stderr)
    assert orphans._members(session) == [] and not list(running.glob("*.pid"))  # whatever it started is ended too

"""Every kind of bad input, across the subcommands: one line on stderr naming what is wrong, exit 2,
no traceback, and nothing already measured touched.

Each case is (files to write into a throwaway project, the command line); the project holds a
good matrix.toml, a pre-filled index listing (no network) and a measured report in reports/, which
must be byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fakeproject
import pytest

REPO = Path(__file__).parents[2]
GOOD = """
[settings]
python = "3.11"
[profiles.default]
[[profiles.default.grid]]
trl = ["1.0.0"]
transformers = ["4.46.3"]
"""
REPORT = {"schema_version": 2, "formatter_tables": [], "cells": [
    {"trl": "1.0.0", "transformers": "4.46.3", "resolution": "latest", "status": "compatible",
     "keyword": {"processing_class": "accepted", "tokenizer": "rejected"}, "import_path": "trl"}]}


def _matrix(body: str) -> dict[str, str | bytes | None]:
    return {"matrix.toml": body}


def _grid(extra: str) -> dict[str, str | bytes | None]:
    return _matrix(GOOD.replace('[profiles.default]', extra + '\n[profiles.default]'))


CASES: dict[str, tuple[dict[str, str | bytes | None], list[str]]] = {
    # matrix.toml
    "toml-not-utf8": (_matrix(b"[settings]\npython = \"3.11\xff\"\n"), ["list"]),  # type: ignore[dict-item]
    "toml-syntax": (_matrix("[settings\n"), ["list"]),
    "toml-unknown-key": (_matrix(GOOD.replace('python = "3.11"', 'python = "3.11"\nbogus = 1')), ["list"]),
    "toml-negative-timeout": (_matrix(GOOD.replace('python = "3.11"', 'python = "3.11"\ncell_timeout = -5')), ["list"]),
    "toml-timeout-text": (_matrix(GOOD.replace('python = "3.11"', 'python = "3.11"\ncell_timeout = "soon"')), ["list"]),
    "toml-python-float": (_matrix(GOOD.replace('python = "3.11"', "python = 3.10")), ["list"]),
    "toml-requirements-string": (_matrix(GOOD.replace('python = "3.11"', 'python = "3.11"\ncell_requirements = "pytest"')), ["list"]),
    "toml-empty-version": (_matrix(GOOD.replace('trl = ["1.0.0"]', 'trl = [""]')), ["list"]),
    "toml-profiles-not-table": (_matrix('[settings]\npython = "3.11"\nprofiles = "x"\n'), ["list"]),
    "toml-unknown-trainer": (_matrix(GOOD.replace('python = "3.11"', 'python = "3.11"\ntrainers = ["ppo"]')), ["list"]),
    "toml-from-unknown": (_grid('[profiles.dpo]\nfrom = "nope"'), ["list", "--profile", "dpo"]),
    "toml-unknown-profile": ({}, ["list", "--profile", "nope"]),
    # selections and flags
    "only-malformed": ({}, ["list", "--only", "trl=1.0.0"]),
    "only-resolution": ({}, ["list", "--only", "trl==1.0.0,transformers==4.46.3,resolution=yesterday"]),
    "only-not-on-index": ({}, ["list", "--only", "trl==9.9.9,transformers==4.46.3"]),
    "only-not-a-version": ({}, ["list", "--only", "trl==banana,transformers==4.46.3"]),
    "shard-out-of-range": ({}, ["list", "--shard", "3/2"]),
    "jobs-negative": ({}, ["matrix", "-j", "-1"]),
    "out-is-a-file": ({"afile": "x"}, ["matrix", "--out", "{project}/afile"]),
    # stored results
    "report-corrupt": ({"bad/compat.json": "{not json"}, ["report", "--results", "{project}/bad"]),
    "report-truncated": ({"bad/compat.json": json.dumps(REPORT)[:60]}, ["report", "--results", "{project}/bad"]),
    "report-wrong-shape": ({"bad/compat.json": json.dumps({"schema_version": 2, "cells": [{"trl": 1}]})},
                           ["report", "--results", "{project}/bad"]),
    "report-missing": ({}, ["report", "--results", "{project}/nowhere"]),
    "merge-all-corrupt": ({"shard/cells/a.json": "{", "shard/cells/b.json": "[]"}, ["merge", "{project}/shard", "--out", "{project}/m"]),
    "merge-traversal": ({"shard/compat.json": json.dumps({"schema_version": 1, "cells": [
        {"trl": "1.0.0", "transformers": "/../../x", "resolution": "latest", "status": "compatible"}]})},
        ["merge", "{project}/shard", "--out", "{project}/m"]),
    "merge-unwritable-out": ({"afile": "x"}, ["merge", "{project}/reports", "--out", "{project}/afile/sub"]),
    "regressions-missing-new": ({}, ["regressions", "{project}/reports/compat.json", "{project}/nope.json"]),
    "regressions-old-not-json": ({"old.json": "<html>"}, ["regressions", "{project}/old.json", "{project}/reports/compat.json"]),
    "findings-unwritable": ({"afile": "x"}, ["findings", "--results", "{project}/reports", "-o", "{project}/afile/f.json"]),
    "export-unwritable": ({"afile": "x"}, ["export-adapter", "-o", "{project}/afile/k.py"]),
    "export-findings-list": ({"f.json": "[]"}, ["export-adapter", "--findings", "{project}/f.json", "-o", "{project}/k.py"]),
    "check-findings-list": ({"f.json": "[]"}, ["check", "--findings", "{project}/f.json", "--pair", "trl==1.0.0,transformers==4.46.3"]),
    "check-pair-one-axis": ({}, ["check", "--pair", "trl==1.0.0"]),
    # bisect
    "bisect-good-banana": ({}, ["bisect", "--axis", "trl", "--fixed", "transformers==4.46.3", "--probe", "status", "--good", "banana"]),
    "bisect-good-is-bad": ({}, ["bisect", "--axis", "trl", "--fixed", "transformers==4.46.3", "--probe", "keyword.tokenizer",
                                "--good", "accepted", "--bad", "accepted"]),
    "bisect-fixed-wrong-axis": ({}, ["bisect", "--axis", "trl", "--fixed", "trl==1.0.0", "--probe", "status"]),
    "bisect-fixed-not-version": ({}, ["bisect", "--axis", "trl", "--fixed", "transformers==latest", "--probe", "status"]),
    # settings that validate and then crash, inputs that scale badly
    "toml-spec-not-string": (_matrix(GOOD.replace('trl = ["1.0.0"]', 'trl = [{spec = 1}]')), ["list"]),
    "toml-pick-not-string": (_matrix(GOOD.replace('trl = ["1.0.0"]', 'trl = [{spec = "<2", pick = 3}]')), ["list"]),
    "toml-from-list": (_grid('[profiles.dpo]\nfrom = ["default"]'), ["list", "--profile", "dpo"]),
    "toml-bytecode-huge": (_matrix(GOOD.replace('python = "3.11"', 'python = "3.11"\nbytecode_gib = 1e300')), ["list"]),
    "toml-grid-too-large": ({**_matrix(GOOD.replace('trl = ["1.0.0"]', 'trl = [{spec = ">=0", pick = "all"}]')
                                       .replace('transformers = ["4.46.3"]', 'transformers = [{spec = ">=0", pick = "all"}]')),
                             **{f".compat/index/{n}.json": json.dumps(fakeproject.listing(*(f"1.{i}.0" for i in range(1500))))
                                for n in ("trl", "transformers")}}, ["list"]),  # 1,500 x 1,500
    "index-cache-filename-int": ({".compat/index/trl.json": json.dumps({"files": [{"filename": 5, "upload-time": 7}]})},
                                 ["list"]),
    "shards-minutes-nan": ({"cells.txt": "trl==1.0.0,transformers==4.46.3\n"},
                           ["shards", "{project}/cells.txt", "--results", "{project}/reports", "--minutes", "nan"]),
    "lock-is-a-directory": ({"reports/.compat.lock/": None}, ["report", "--results", "{project}/reports"]),
    "state-dir-clobbered": ({".compat/results": "not a directory"}, ["matrix", "--out", "{project}/out"]),
    "uv-missing": ({}, ["matrix", "--out", "{project}/out"]),  # COMPAT_UV names no file (below)
    "toml-is-a-directory": ({"conf/": None}, ["releases", "--config", "{project}/conf"]),
    "shards-cells-is-a-directory": ({"cells/": None}, ["shards", "{project}/cells", "--results", "{project}/reports"]),
    # documents: nesting, size, duplicates
    "report-deep-json": ({"bad/compat.json": "[" * 100_000 + "]" * 100_000}, ["report", "--results", "{project}/bad"]),
    "report-duplicate-cell": ({"bad/compat.json": json.dumps({**REPORT, "cells": REPORT["cells"] + [
        {**REPORT["cells"][0], "status": "incompatible", "failure": {"stage": "train", "message": "x"}}]})},
        ["findings", "--results", "{project}/bad", "-o", "{project}/f.json"]),
    "report-pep440-equal-versions": ({"bad/compat.json": json.dumps({**REPORT, "cells": REPORT["cells"] + [
        {**REPORT["cells"][0], "trl": "1.0"}]})}, ["report", "--results", "{project}/bad"]),
    "regressions-deep-json": ({"old.json": "{\"a\":" * 50_000 + "1" + "}" * 50_000},
                              ["regressions", "{project}/old.json", "{project}/reports/compat.json"]),
    "findings-deep-json": ({"f.json": "[" * 100_000 + "]" * 100_000},
                           ["check", "--findings", "{project}/f.json", "--pair", "trl==1.0.0,transformers==4.46.3"]),
    "findings-is-a-directory": ({"ff/": None}, ["check", "--findings", "{project}/ff", "--pair", "trl==1.0.0,transformers==4.46.3"]),
    "memory-config-deep-json": ({"c.json": "[" * 100_000 + "]" * 100_000}, ["memory", "--model-config", "{project}/c.json"]),
    "merge-deep-cell": ({"shard/cells/a.json": "[" * 100_000 + "]" * 100_000}, ["merge", "{project}/shard", "--out", "{project}/m"]),
    # memory (more in test_memory.py)
    "memory-params-huge": ({}, ["memory", "--params", "1e30"]),
    "memory-batch-huge": ({}, ["memory", "--batch-size", "1000000000000"]),
    "memory-params-zero": ({}, ["memory", "--params", "0"]),
    "memory-params-nan": ({}, ["memory", "--params", "nan"]),
    "memory-gpu-negative": ({}, ["memory", "--gpu-gib", "-24"]),
}
NEEDS_CONFIG = {"list", "matrix", "bisect"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = fakeproject.make(tmp_path, GOOD, ["0.12.2", "1.0.0"], ["4.46.3", "5.0.0"])
    (root / "reports").mkdir()
    (root / "reports" / "compat.json").write_text(json.dumps(REPORT))
    return root


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(name: str, project: Path):
    files, argv = CASES[name]
    for rel, content in files.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:  # a directory where a file belongs
            path.mkdir()
            continue
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    measured = (project / "reports" / "compat.json").read_bytes()
    args = [a.replace("{project}", str(project)) for a in argv]
    if args[0] in NEEDS_CONFIG:
        args += ["--config", str(project / "matrix.toml")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COMPAT_UV": str(project / ("no-uv" if name == "uv-missing" else "uv")),
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}  # nothing may reach a real index
    proc = subprocess.run([sys.executable, "-m", "compat", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert (project / "reports" / "compat.json").read_bytes() == measured


def test_there_are_at_least_25_classes():
    assert len(CASES) >= 25


# ---- output paths that are not regular files ----------------------------------------------------------

def _node(kind: str, path: Path) -> None:
    """A non-regular file at ``path``: a FIFO, a socket, a directory, or a character device (mknod as root,
    else a symlink to /dev/zero, which the helper follows and refuses the same way)."""
    import socket
    import stat

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "directory":
        path.mkdir()
    elif os.geteuid() == 0:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
    else:
        path.symlink_to("/dev/zero")


def _state(path: Path) -> tuple[int, int, bool]:
    st = os.lstat(path)
    return st.st_mode, st.st_rdev, path.is_symlink()


@pytest.mark.parametrize("kind", ["chardev", "fifo", "socket", "directory"])
@pytest.mark.parametrize("command", ["export-adapter", "findings"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_it_is_read(project: Path, kind: str, command: str):
    import time

    node = project / "node"
    _node(kind, node)
    before = _state(node)
    argv = [command, "-o", str(node)] + (["--results", str(project / "reports")] if command == "findings" else [])
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "compat", *argv], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30)  # a FIFO read would hang here
    assert time.monotonic() - start < 10
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not a regular file" in proc.stderr, proc.stderr
    assert _state(node) == before
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []


def test_an_output_symlink_is_written_through_and_the_mode_kept(project: Path):
    real = project / "real.py"
    real.write_text("old")
    real.chmod(0o750)
    link = project / "link.py"
    link.symlink_to(real)
    proc = subprocess.run([sys.executable, "-m", "compat", "export-adapter", "-o", str(link)], cwd=project,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "def " in real.read_text() and (real.stat().st_mode & 0o777) == 0o750
    helptext = subprocess.run([sys.executable, "-m", "compat", "export-adapter", "--help"], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert "symlink is written through" in " ".join(helptext.split())


def test_a_write_that_fails_halfway_leaves_no_temporary_file(project: Path):
    """A disk that fills up mid-write (here: a file-size limit, EFBIG) leaves the old file and no temporary."""
    target = project / "k.py"
    target.write_text("old")
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); from compat.cli.main import main; "
              f"sys.exit(main(['export-adapter', '-o', {str(target)!r}]))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cannot write" in proc.stderr, proc.stderr
    assert target.read_text() == "old"
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("argv", [
    ["matrix", "--out", "{project}/bad", "--config", "{project}/matrix.toml"],
    ["report", "--results", "{project}/bad"],
    ["findings", "--results", "{project}/bad", "-o", "{project}/f.json"],
    ["merge", "{project}/reports", "{project}/bad", "--out", "{project}/m"],
    ["releases", "--results", "{project}/bad", "--config", "{project}/matrix.toml"],
    ["shards", "{project}/cells.txt", "--results", "{project}/bad"],
    ["regressions", "{project}/reports/compat.json", "{project}/bad/compat.json"],
    ["changes", "{project}/bad/compat.json", "{project}/reports/compat.json"],
], ids=lambda argv: argv[0])
def test_every_reader_of_stored_results_refuses_a_broken_report_alike(project: Path, argv: list[str]):
    """Stored results have one loader: every command that reads them says the same one line naming the
    file, exit 2, and leaves it as it was (a run does not replace a report it could not read)."""
    bad = project / "bad" / "compat.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(REPORT)[:60])
    (project / "cells.txt").write_text("trl==1.0.0,transformers==4.46.3\n")
    args = [a.replace("{project}", str(project)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "compat", *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COMPAT_UV": str(project / "uv"),
                               "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    [line] = proc.stderr.strip().splitlines()
    assert f"error: {bad}: not JSON" in line, line
    assert bad.read_text() == json.dumps(REPORT)[:60]


def test_a_broken_cell_file_is_named_not_skipped(project: Path):
    """A results directory of cells/*.json: one unreadable file stops the merge, naming it, instead of
    the merge publishing the others without it."""
    cells = project / "shard" / "cells"
    cells.mkdir(parents=True)
    (cells / "a.json").write_text(json.dumps(REPORT["cells"][0]))
    (cells / "b.json").write_text("{")
    proc = subprocess.run([sys.executable, "-m", "compat", "merge", str(project / "shard"), "--out", str(project / "m")],
                          cwd=project, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=60)
    assert proc.returncode == 2 and f"error: {cells / 'b.json'}: not JSON" in proc.stderr, proc.stderr
    assert not (project / "m" / "compat.json").exists()


@pytest.mark.parametrize("argv", [["releases", "--config", "{node}"], ["shards", "{node}", "--results", "{project}/reports"],
                                  ["report", "--results", "{node}"], ["memory", "--model-config", "{node}"]],
                         ids=["matrix-toml", "shards-cells", "report-json", "model-config"])
def test_an_input_that_is_a_fifo_is_refused_not_read_forever(project: Path, argv: list[str]):
    node = project / "input.json"
    os.mkfifo(node)
    args = [a.replace("{node}", str(node)).replace("{project}", str(project)) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "compat", *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_commands_that_need_a_checkout_say_so_elsewhere(tmp_path: Path):
    """`list` (like matrix, releases, shards, bisect and bench) plans from matrix.toml: outside a checkout the
    line says where to run it; `findings` from an installed kto-compat will not rewrite the package's own file."""
    proc = subprocess.run([sys.executable, "-m", "compat", "list"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "matrix.toml: no such file; run this command in a kto-compat checkout" in proc.stderr
    installed = tmp_path / "site" / "compat"
    installed.mkdir(parents=True)
    script = ("import sys; from pathlib import Path; from compat.cli import results; "
              f"results.PACKAGE = Path({str(installed)!r}); from compat.cli.main import main; "
              "sys.exit(main(['findings', '--results', 'nowhere']))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 2 and "not a checkout; pass -o FILE" in proc.stderr, proc.stderr

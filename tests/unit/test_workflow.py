"""The scheduled CI workflow: schema-valid, zizmor-clean, and its own shell steps work.

Both linters come from PyPI (the `test` extra) and run offline. The
workflow's `run:` steps are then executed here, job by job, with bash as
GitHub runs them: `python -m compat releases/list/shards/matrix/merge/changes/
regressions/findings` against a fake project (pre-populated index cache, fake
uv, and for the published table a result cache holding recorded cells), and a
fake `gh` that records its calls and answers `issue list` like GitHub. Only
`uses:` steps (checkout, artifacts, the pull-request action) are emulated, and
their `if:`s evaluated as GitHub would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import fakeproject
import pytest
import yaml
from packaging.version import Version

from compat.contract import CellResult
from compat.harness.documents import dumps_cell, load_document
from compat.harness.documents import dumps_document as dumps
from compat.harness.plan import Cell

REPO = Path(__file__).parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "compat-matrix.yml"
PAGES = REPO / ".github" / "workflows" / "pages.yml"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SHA = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def tool(name: str) -> str:
    """A console script of the test extra, next to this interpreter or on PATH; missing is a failure."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


@pytest.mark.needs("check-jsonschema")
@pytest.mark.parametrize("path", [WORKFLOW, PAGES], ids=lambda p: p.name)
def test_valid_against_the_github_workflow_schema(path):
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.needs("zizmor")
@pytest.mark.parametrize("path", [WORKFLOW, PAGES], ids=lambda p: p.name)
def test_zizmor_offline_finds_nothing(path):
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    proc = subprocess.run([tool("zizmor"), "--offline", "--no-progress", str(path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout + proc.stderr


def test_pages_deploys_docs_compat_with_least_permissions():
    pages = yaml.safe_load(PAGES.read_text())
    pages["on"] = pages.pop(True, pages.get("on"))
    assert pages["on"]["push"] == {"branches": ["main"], "paths": ["docs/compat/**"]}
    assert pages["permissions"] == {}
    upload, deploy = pages["jobs"]["upload"], pages["jobs"]["deploy"]
    assert upload["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    steps = upload["steps"] + deploy["steps"]
    assert all(SHA.match(s["uses"]) for s in steps if "uses" in s)
    assert next(s for s in upload["steps"] if "upload-pages-artifact" in s["uses"])["with"]["path"] == "docs/compat"


def test_hardening_pins_permissions_credentials_and_no_expressions_in_scripts(workflow):
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, name
        for step in job["steps"]:
            if "uses" in step:
                assert SHA.match(step["uses"]), step["uses"]
                if step["uses"].startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
            if "run" in step:
                assert "${{" not in step["run"], f"{name}: pass expressions through env:, not into the script"
    assert workflow["jobs"]["plan"]["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["cells"]["permissions"] == {"contents": "read"}


# ---- running the workflow's own steps ---------------------------------------------------------

MATRIX = fakeproject.matrix((["0.12.*", "latest"], ["4.46.3", "5.0.0"]))
# A stand-in for `gh`: every call is logged; `issue list` answers with $FAKE_GH_ISSUES (JSON), as
# `gh issue list --json number,title,body` does.
GH = """#!/bin/sh
echo "$*" >> "$GH_LOG"
if [ "$1 $2" = "issue list" ]; then cat "$FAKE_GH_ISSUES" 2>/dev/null || echo '[]'; fi
"""
STATUS_FUNCTIONS = re.compile(r"\b(cancelled|always|success|failure)\(\)")


class Runner:
    """Runs a job's steps by id as GitHub would: bash -eo pipefail, env from workflow/job/step."""

    def __init__(self, workflow: dict[str, Any], root: Path, values: dict[str, str], env: dict[str, str]) -> None:
        self.workflow, self.root, self.values, self.env = workflow, root, values, env
        bin_dir = root / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "python").write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
        (bin_dir / "gh").write_text(GH)
        for exe in bin_dir.iterdir():
            exe.chmod(0o755)
        self.path = f"{bin_dir}:{os.environ['PATH']}"

    def expand(self, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            assert m.group(1) in self.values, f"test has no value for ${{{{ {m.group(1)} }}}}"
            return self.values[m.group(1)]
        return EXPR.sub(value, str(text))

    def condition(self, text: str, needs_ok: bool = True) -> bool:
        """An `if:` of this workflow: `&&` of `X == 'v'` / `X != 'v'` and `!cancelled()` (nothing is
        cancelled here). Without a status function GitHub adds success(): every needed job succeeded."""
        inner = EXPR.sub(lambda m: m.group(1), str(text)).strip()
        ok = needs_ok or bool(STATUS_FUNCTIONS.search(inner))
        for term in (t.strip() for t in inner.split("&&")):
            if term == "!cancelled()":
                continue
            m = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", term)
            assert m, f"test cannot evaluate if: {text}"
            ok = ok and (self.values[m.group(1)] == m.group(3)) == (m.group(2) == "==")
        return ok

    def find(self, job: str, step_id: str) -> dict[str, Any]:
        [step] = [s for s in self.workflow["jobs"][job]["steps"] if s.get("id") == step_id or s.get("uses", "").startswith(step_id)]
        return step

    def runs(self, job: str, step_id: str) -> bool:
        step = self.find(job, step_id)
        return self.condition(step["if"]) if "if" in step else True

    def step(self, job: str, step_id: str, fails: bool = False) -> dict[str, str]:
        step = self.find(job, step_id)
        assert self.runs(job, step_id), f"{step_id} would be skipped"
        out, summary = self.root / "github_output", self.root / "step_summary"
        out.write_text("")
        env = {**os.environ, "PATH": self.path, "PYTHONPATH": str(REPO), "COMPAT_UV": str(self.root / "uv"),
               "FAKE_CELL_SLEEP": "0", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
               "GH_LOG": str(self.root / "gh.log"), "FAKE_GH_ISSUES": str(self.root / "gh-issues.json")}
        for scope in (self.workflow.get("env", {}), self.workflow["jobs"][job].get("env", {}), step.get("env", {})):
            env.update({k: self.expand(v) for k, v in scope.items()})
        env.update(self.env)
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=self.root,
                              env=env, capture_output=True, text=True, timeout=600)
        self.stderr = proc.stderr
        assert (proc.returncode != 0) == fails, f"{job}/{step_id} exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


def published(root: Path, *cells: tuple[str, str, str]) -> None:
    d = root / "docs" / "compat"
    d.mkdir(parents=True, exist_ok=True)
    rows = [CellResult(t, f, "latest", s, keyword={"processing_class": "accepted", "tokenizer": "rejected"}).serialize()
            for t, f, s in cells]
    (d / "compat.json").write_text(json.dumps({"schema_version": 1, "profile": "default", "cells": rows}))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = fakeproject.make(tmp_path, MATRIX, ["0.12.0", "0.12.2", "1.0.0", "1.1.0"], ["4.46.3", "5.0.0"])
    (root / "compat").mkdir()  # findings are written to compat/findings.json, as in the checkout
    shutil.copytree(REPO / "compat" / "schema", root / "compat" / "schema")  # published beside the table
    published(root, ("0.12.2", "4.46.3", "compatible"), ("0.12.2", "5.0.0", "unresolvable"),
              ("1.0.0", "4.46.3", "unresolvable"), ("1.0.0", "5.0.0", "compatible"))
    return root


@dataclass
class Run:
    """What one simulated run did: the plan's outputs, the merge's, and whether a pull request was proposed."""

    sim: Runner
    plan: dict[str, str]
    merged: dict[str, str] | None = None
    proposed: bool = False


def run_workflow(workflow: dict[str, Any], root: Path, full: str, profiles: str = "default", **env: str) -> Run:
    values = {"inputs.full": full, "inputs.profiles || 'default dpo full'": profiles, "github.token": "t",
              "github.repository": "o/r", "github.server_url": "https://github.example", "github.run_id": "42"}
    sim = Runner(workflow, root, values, env)
    run = Run(sim, sim.step("plan", "plan"))
    values.update({f"needs.plan.outputs.{k}": v for k, v in run.plan.items()})
    values["needs.plan.result"] = "success"
    if not sim.condition(workflow["jobs"]["cells"]["if"]):
        values["needs.cells.result"] = "skipped"
        assert not sim.condition(workflow["jobs"]["publish"]["if"])
        return run
    shutil.rmtree(root / "shards", ignore_errors=True)  # each run downloads its own artifacts
    for shard in json.loads(run.plan["shards"]):
        values["matrix.shard"] = str(shard)
        sim.step("cells", "shard")
        (root / "shards").mkdir(exist_ok=True)
        shutil.move(root / f"shard-{shard}", root / "shards" / f"shard-{shard}")  # download-artifact's layout
    values["needs.cells.result"] = "success"
    assert sim.condition(workflow["jobs"]["publish"]["if"])
    for leftover in ("merged", "issue-actions"):  # a fresh runner: nothing of the last run
        shutil.rmtree(root / leftover, ignore_errors=True)
    run.merged = sim.step("publish", "merge")
    values["steps.merge.outputs.changed"] = run.merged["changed"]
    if sim.runs("publish", "publish"):
        sim.step("publish", "publish")
    sim.step("publish", "issue")
    run.proposed = sim.runs("publish", "peter-evans/create-pull-request")
    return run


def gh_calls(root: Path) -> list[str]:
    log = root / "gh.log"
    return [c for c in log.read_text().splitlines() if not c.startswith("issue list")] if log.exists() else []


@pytest.mark.needs("matplotlib")
def test_daily_run_measures_only_new_releases_in_shards_and_merges_them(workflow, project):
    # No CI shard has measured a cold cell time yet: 30 s a cell, so half a minute of cell time per
    # shard is one cell each.
    run = run_workflow(workflow, project, "", SHARD_MINUTES="0.5")
    plan = run.plan
    assert plan["only"].split() == ["trl==1.1.0,transformers==4.46.3", "trl==1.1.0,transformers==5.0.0"]
    assert (plan["count"], plan["shards"], plan["total"]) == ("2", "[1, 2]", "2")
    cells = json.loads((project / "docs" / "compat" / "compat.json").read_text())["cells"]
    assert sorted((c["trl"], c["transformers"]) for c in cells) == [
        ("0.12.2", "4.46.3"), ("0.12.2", "5.0.0"), ("1.0.0", "4.46.3"), ("1.0.0", "5.0.0"),
        ("1.1.0", "4.46.3"), ("1.1.0", "5.0.0")]
    assert run.merged["changed"] == "true" and run.proposed and gh_calls(project) == []
    body = (project / "pr-body.md").read_text()
    assert "- new trl 1.1.0: 2 cell(s): 2 compatible" in body
    # trl 1.0.0 was refused with transformers 4.46.3; 1.1.0 installs and trains there: a fix.
    assert "## 1 fix(es)" in body and "| kto | trl 1.1.0 + transformers 4.46.3 | latest | trl 1.0.0 | unresolvable |" in body
    assert (project / "step_summary").read_text().endswith(body)  # the step summary is the short account
    assert json.loads((project / "compat" / "findings.json").read_text())["generated_from"]["cells"] == 6
    meta = json.loads((project / "docs" / "compat" / "compat.json").read_text())
    assert meta["profile"] == "default" and meta["cold_seconds"] > 0
    published = sorted(p.relative_to(project / "docs" / "compat").as_posix() for p in (project / "docs" / "compat").rglob("*"))
    assert {"COMPAT.md", "GRIDS.md", "compat.json", "compat.svg", "index.html", "schema/compat.schema.json",
            "schema/findings.schema.json", "logs/trl1.1.0-tf5.0.0.log.gz"} <= set(published)
    assert all((project / "docs" / "compat" / c["log"]).is_file() for c in meta["cells"] if c.get("log"))
    again = Runner(workflow, project, {"inputs.full": "", "inputs.profiles || 'default dpo full'": "default"}, {}).step("plan", "plan")
    assert again["count"] == "0" and again["shards"] == "[]"  # covered now: tomorrow's run does nothing


@pytest.mark.needs("matplotlib")
def test_full_rerun_with_a_regression_opens_then_keeps_one_issue(workflow, project):
    run = run_workflow(workflow, project, "true", FAKE_UNTESTED_BELOW="0.13.0")
    assert run.plan["count"] == "4" and run.merged["changed"] == "true"
    regressions = (project / "regressions.md").read_text()
    assert "| kto | trl 0.12.2 + transformers 4.46.3 | latest | the last run | import |" in regressions
    [create] = gh_calls(project)
    assert create == "issue create --title kto-compat: regression detected (kto) --body-file issue-actions/issue-1.md"
    body = (project / "issue-actions" / "issue-1.md").read_text()
    assert "<!-- regression: trl0.12.2-tf4.46.3 -> trl0.12.2-tf4.46.3 -->" in body
    assert "https://github.example/o/r/actions/runs/42" in body
    # The next full run sees the issue open and the regression still there: no second issue, no edit.
    (project / "gh-issues.json").write_text(json.dumps([{"number": 7, "title": "kto-compat: regression detected (kto)",
                                                         "body": body}]))
    run_workflow(workflow, project, "true", FAKE_UNTESTED_BELOW="0.13.0")
    assert gh_calls(project) == [create]


def test_a_failed_plan_fails_its_job_with_one_line_and_nothing_after_it_runs(workflow, project):
    (project / "docs" / "compat" / "compat.json").write_text('{"schema_version": 2, "cells": [{"trl": "x"}]}')
    values = {"inputs.full": "", "inputs.profiles || 'default dpo full'": "default"}
    sim = Runner(workflow, project, values, {})
    sim.step("plan", "plan", fails=True)
    assert [ln for ln in sim.stderr.splitlines() if "error" in ln] == [sim.stderr.strip().splitlines()[-1]]
    assert "docs/compat/compat.json" in sim.stderr
    # GitHub leaves a failed job's outputs empty: the cells job is skipped, and so is publishing.
    values.update({"needs.plan.result": "failure", "needs.plan.outputs.count": "", "needs.cells.result": "skipped"})
    assert not sim.condition(workflow["jobs"]["cells"]["if"], needs_ok=False)
    assert not sim.condition(workflow["jobs"]["publish"]["if"], needs_ok=False)


# ---- the published table, one release removed and measured again ------------------------------

DOCS = REPO / "docs" / "compat"
GONE = "5.25.0"  # the release the scenario's table lacks; its cells come back from the recorded results
NEXT = "5.26.0"  # a later release, recorded as its 5.24.0 neighbours measured
ROW_X, ROW_Y = "0.26.2", "1.15.0"  # broken on 5.25.0; made to work on 5.24.0 in the scenario's table


def _recorded() -> list[CellResult]:
    # The pair's grid: the scenario's profiles (default, dpo, full) have no further axis.
    return [c for c in load_document(DOCS / "compat.json").cells if not c.axes]


def _working(cells: list[CellResult], trl: str, tf: str) -> CellResult:
    """The kto cell of (trl, tf) made compatible, from the compatible cell of the newest TRL on that column."""
    donor = max((c for c in cells if str(c.transformers) == tf and c.trainer == "kto" and c.resolution == "latest"
                 and c.status == "compatible"), key=lambda c: c.trl)
    return replace(donor, trl=Version(trl), environment={**donor.environment, "trl": trl}, log=None)


def _moved(cell: CellResult, tf: str) -> CellResult:
    return replace(cell, transformers=Version(tf), environment={**cell.environment, "transformers": tf}, log=None)


class Published:
    """A project holding a copy of the published table without transformers 5.25.0, whose shards serve the
    recorded cells from the harness's own result cache (as a cached verdict, through `compat matrix`)."""

    def __init__(self, root: Path, versions: dict[str, list[str]]) -> None:
        self.root = fakeproject.make(root, (REPO / "matrix.toml").read_text(), versions["trl"], versions["transformers"])
        (self.root / "compat").mkdir()
        shutil.copytree(REPO / "compat" / "schema", self.root / "compat" / "schema")
        from compat.harness import config, run, suite
        from compat.harness.envs import index_args, uv_visibility
        settings = config.load(self.root / "matrix.toml").settings
        environ = {"PIP_FIND_LINKS": "https://download.pytorch.org/whl/cpu/torch/"}  # the cells job's
        self.key = lambda c: run.cache_key(
            Cell(c.trl, c.transformers, c.resolution, trainer=c.trainer, forced=c.forced), settings,
            suite.suite_hash(suite.checkout()), " ".join(index_args(settings, environ) + uv_visibility()))

    def record(self, cells: list[CellResult]) -> None:
        cache = self.root / ".compat" / "results"
        cache.mkdir(parents=True, exist_ok=True)
        locks = self.root / ".compat" / "locks"  # where the harness keeps a cached cell's lock
        locks.mkdir(parents=True, exist_ok=True)
        for c in cells:  # an entry is served only under its own key (run.read_cached)
            key = self.key(c)
            (cache / f"{key}.json").write_text(dumps_cell(replace(c, cache_key=key)))
            if c.lock:
                (locks / f"{c.lock}.txt").write_bytes((DOCS / "locks" / f"{c.lock}.txt").read_bytes())

    def list_transformers(self, versions: list[str]) -> None:
        (self.root / ".compat" / "index" / "transformers.json").write_text(json.dumps(fakeproject.listing(*versions)))

    def files(self) -> dict[str, bytes]:
        d = self.root / "docs" / "compat"
        return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> tuple[Published, list[CellResult]]:
    """The published table less 5.25.0, with rows X and Y working on 5.24.0, rendered as the workflow publishes it."""
    cells = _recorded()
    versions = {a: [str(v) for v in sorted({getattr(c, a) for c in cells})] for a in ("trl", "transformers")}
    project = Published(tmp_path_factory.mktemp("published"), versions)
    changed = {_working(cells, t, "5.24.0").id: _working(cells, t, "5.24.0") for t in (ROW_X, ROW_Y)}
    table = [changed.get(c.id, c) for c in cells if str(c.transformers) != GONE]
    out = project.root / "docs" / "compat"
    out.mkdir(parents=True)
    (out / "compat.json").write_text(dumps(load_document(DOCS / "compat.json").meta, table))
    for name in ("COMPAT.md", "compat.svg", "index.html"):  # as published; a run that changes nothing keeps them
        shutil.copy(DOCS / name, out / name)
    shutil.copytree(REPO / "compat" / "schema", out / "schema")
    shutil.copytree(DOCS / "locks", out / "locks")  # the table is published with its cells' locks
    return project, cells


def _copy(project: Published, root: Path) -> Published:
    shutil.copytree(project.root, root)
    copy = object.__new__(Published)
    copy.root, copy.key = root, project.key
    return copy


def test_a_run_whose_every_cell_errs_changes_no_published_file_and_proposes_nothing(workflow, scenario, tmp_path):
    project = _copy(scenario[0], tmp_path / "repo")
    before = project.files()
    run = run_workflow(workflow, project.root, "", "default dpo full", FAKE_SYNC_FAIL="No space left on device (os error 28)")
    assert run.plan["count"] == "40"  # the 41st 5.25.0 cell is the drift twin of one of them
    assert run.merged["changed"] == "false" and not run.proposed and not run.sim.runs("publish", "publish")
    assert project.files() == before
    body = (project.root / "pr-body.md").read_text()
    assert "- new transformers 5.25.0: 40 cell(s): 40 error" in body and "## 40 harness error(s)" in body
    assert gh_calls(project.root) == []


@pytest.mark.needs("matplotlib")
def test_a_release_that_breaks_a_working_row_is_flagged_the_day_it_lands_and_the_issue_follows_it(
        workflow, scenario, tmp_path):
    project, recorded = _copy(scenario[0], tmp_path / "repo"), scenario[1]
    y_gone = next(c for c in recorded if c.id == f"trl{ROW_Y}-tf{GONE}")
    # Day 1: 5.25.0 is on the index. Every cell is served as recorded except row Y's, which hits a full disk.
    project.record([c for c in recorded if str(c.transformers) == GONE and c.id != y_gone.id])
    run = run_workflow(workflow, project.root, "", "default dpo full", FAKE_SYNC_FAIL="No space left on device (os error 28)")
    assert run.merged["changed"] == "true" and run.proposed
    body = (project.root / "pr-body.md").read_text()
    line = next(ln for ln in body.splitlines() if ln.startswith("- new transformers 5.25.0: 41 cell(s): "))
    served = Counter(str(c.status) for c in recorded if str(c.transformers) == GONE and c.id != y_gone.id
                     and not (c.failure and c.failure.platform))
    assert f"{served['compatible']} compatible, {served['incompatible']} incompatible" in line and "1 error" in line
    assert "## 1 regression(s)" in body
    assert f"| kto | trl {ROW_X} + transformers {GONE} | latest | transformers 5.24.0 | construct |" in body
    assert "## 1 harness error(s), retried by the next run" in body and f"trl{ROW_Y}-tf{GONE}" in body
    table = load_document(project.root / "docs" / "compat" / "compat.json")
    assert {str(c.transformers) for c in table.cells} >= {GONE} and table.meta["profile"] == load_document(DOCS / "compat.json").meta["profile"]
    links = [c.log for c in table.cells if c.log]
    assert links and all((project.root / "docs" / "compat" / link).is_file() for link in links)
    assert re.findall(r'"log":"(logs/[^"]+)"', (project.root / "docs" / "compat" / "index.html").read_text()) == [
        link for link in links if link]  # the page links exactly the published logs
    [create] = gh_calls(project.root)
    assert create.startswith("issue create --title kto-compat: regression detected (kto) --body-file ")
    issue = (project.root / create.split()[-1]).read_text()
    assert issue.count("<!-- regression:") == 1 and f"trl{ROW_X}-tf5.24.0 -> trl{ROW_X}-tf{GONE}" in issue
    issues = project.root / "gh-issues.json"
    issues.write_text(json.dumps([{"number": 9, "title": "kto-compat: regression detected (kto)", "body": issue}]))

    # Day 2: the errored cell is retried and measured: a second regression updates the one issue.
    project.record([y_gone])
    run = run_workflow(workflow, project.root, "", "default dpo full")
    assert run.plan["only"] == f"trl=={ROW_Y},transformers=={GONE}" and run.proposed
    assert f"| kto | trl {ROW_Y} + transformers {GONE} | latest | transformers 5.24.0 | train |" in (
        project.root / "pr-body.md").read_text()
    [_, edit] = gh_calls(project.root)
    assert edit.startswith("issue edit 9 --body-file ")
    issue = (project.root / edit.split()[-1]).read_text()
    assert issue.count("<!-- regression:") == 2
    issues.write_text(json.dumps([{"number": 9, "title": "kto-compat: regression detected (kto)", "body": issue}]))

    # Day 3: transformers 5.26.0 works on both rows again: nothing stands, the issue is closed with a comment.
    table = load_document(project.root / "docs" / "compat" / "compat.json").cells
    week = {(c.trainer, c.resolution, c.trl): c for c in table if str(c.transformers) == "5.24.0"}
    project.record([_moved(week.get((c.trainer, c.resolution, c.trl), c), NEXT) for c in recorded
                    if str(c.transformers) == GONE])
    project.list_transformers([*sorted({str(c.transformers) for c in recorded}, key=Version), NEXT])
    run = run_workflow(workflow, project.root, "", "default dpo full")
    assert "- new transformers 5.26.0: 41 cell(s)" in (project.root / "pr-body.md").read_text()
    assert gh_calls(project.root)[2:] == ["issue comment 9 --body-file issue-actions/issue-1.md", "issue close 9"]
    assert "No regression stands any more" in (project.root / "issue-actions" / "issue-1.md").read_text()


def test_a_full_plan_puts_each_cell_in_exactly_one_shard_drift_twins_included(scenario):
    from compat.harness import config, index, plan

    project, recorded = scenario
    matrix = project.root / "matrix.toml"
    cfg, lister = config.load(matrix), index.lister(matrix, max_age=float("inf"))
    only = sorted({c.only for p in ("default", "dpo", "full") for c in plan.plan(cfg, p, lister)})  # the plan step's
    assert len(only) > 1800
    every = plan.plan(cfg, "default", lister, only)
    shards = [plan.plan(cfg, "default", lister, only, (i, 4)) for i in range(1, 5)]
    ids = [c.id for shard in shards for c in shard]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(c.id for c in every)
    # A drifted `latest` cell brings its as-of-release twin only where no other shard runs that twin.
    drifted = next(c for c in recorded if c.failure and c.failure.drift and c.resolution == "latest")
    [mine] = [c for shard in shards for c in shard if c.id == drifted.id]
    twin = replace(mine, resolution="as-of-release")
    assert plan.drift_followups([drifted], [mine]) == [twin]
    assert plan.drift_followups([drifted], [mine], [*every, twin]) == []

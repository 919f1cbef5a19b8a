"""The scheduled CI workflow: schema-valid, zizmor-clean, and its own shell steps work.

Both linters come from PyPI (the `test` extra) and run offline. The
workflow's `run:` steps are then executed here, job by job, with bash as
GitHub runs them: `python -m compat releases/list/matrix/merge/regressions/
findings` against a fake project (pre-populated index cache, fake uv), and a
fake `gh` recording the issue calls. Only `uses:` steps (checkout, artifacts,
the pull-request action) are emulated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import fakeproject
from compat.contract import CellResult

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


@pytest.mark.parametrize("path", [WORKFLOW, PAGES], ids=lambda p: p.name)
def test_valid_against_the_github_workflow_schema(path):
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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
GH = """#!/bin/sh
echo "$*" >> "$GH_LOG"
if [ "$1 $2" = "issue list" ] && [ -n "$FAKE_GH_ISSUE" ]; then echo "$FAKE_GH_ISSUE"; fi
"""


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

    def condition(self, text: str) -> bool:
        """The workflow's `if:`s are `[!cancelled() &&] X == 'v'` / `X != 'v'`; nothing is cancelled here."""
        inner = EXPR.sub(lambda m: m.group(1), str(text)).replace("!cancelled() &&", "").strip()
        m = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", inner)
        assert m, f"test cannot evaluate if: {text}"
        return (self.values[m.group(1)] == m.group(3)) == (m.group(2) == "==")

    def step(self, job: str, step_id: str) -> dict[str, str]:
        [step] = [s for s in self.workflow["jobs"][job]["steps"] if s.get("id") == step_id]
        assert self.condition(step["if"]) if "if" in step else True, f"{step_id} would be skipped"
        out, summary = self.root / "github_output", self.root / "step_summary"
        out.write_text("")
        env = {**os.environ, "PATH": self.path, "PYTHONPATH": str(REPO), "COMPAT_UV": str(self.root / "uv"),
               "FAKE_CELL_SLEEP": "0", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
               "GH_LOG": str(self.root / "gh.log")}
        for scope in (self.workflow.get("env", {}), self.workflow["jobs"][job].get("env", {}), step.get("env", {})):
            env.update({k: self.expand(v) for k, v in scope.items()})
        env.update(self.env)
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=self.root,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{job}/{step_id} failed:\n{proc.stdout}\n{proc.stderr}"
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


def run_workflow(workflow: dict[str, Any], root: Path, full: str, **env: str) -> tuple[Runner, dict[str, str], dict[str, str]]:
    values = {"inputs.full": full, "inputs.profiles || 'default dpo full'": "default", "github.token": "t",
              "github.repository": "o/r", "github.server_url": "https://github.example", "github.run_id": "42"}
    sim = Runner(workflow, root, values, env)
    plan = sim.step("plan", "plan")
    values.update({f"needs.plan.outputs.{k}": v for k, v in plan.items()})
    assert sim.condition(workflow["jobs"]["cells"]["if"])
    for shard in json.loads(plan["shards"]):
        values["matrix.shard"] = str(shard)
        sim.step("cells", "shard")
        (root / "shards").mkdir(exist_ok=True)
        shutil.move(root / f"shard-{shard}", root / "shards" / f"shard-{shard}")  # download-artifact's layout
    assert sim.condition(workflow["jobs"]["publish"]["if"])
    merged = sim.step("publish", "merge")
    values["steps.merge.outputs.regressed"] = merged["regressed"]
    return sim, plan, merged


def test_daily_run_measures_only_new_releases_in_shards_and_merges_them(workflow, project):
    # Nothing measured has a cell time yet (the published cells record none): 30 s a cell, so half a
    # minute of cell time per shard is one cell each.
    _, plan, merged = run_workflow(workflow, project, "", SHARD_MINUTES="0.5")
    assert plan["only"].split() == ["trl==1.1.0,transformers==4.46.3", "trl==1.1.0,transformers==5.0.0"]
    assert (plan["count"], plan["shards"], plan["total"]) == ("2", "[1, 2]", "2")
    cells = json.loads((project / "docs" / "compat" / "compat.json").read_text())["cells"]
    assert sorted((c["trl"], c["transformers"]) for c in cells) == [
        ("0.12.2", "4.46.3"), ("0.12.2", "5.0.0"), ("1.0.0", "4.46.3"), ("1.0.0", "5.0.0"),
        ("1.1.0", "4.46.3"), ("1.1.0", "5.0.0")]
    assert merged["regressed"] == "false" and not (project / "regressions.md").read_text()
    assert "| TRL \\ transformers |" in (project / "step_summary").read_text()
    assert json.loads((project / "compat" / "findings.json").read_text())["generated_from"]["cells"] == 6
    assert json.loads((project / "docs" / "compat" / "compat.json").read_text())["profile"] == "default"
    published = sorted(p.relative_to(project / "docs" / "compat").as_posix() for p in (project / "docs" / "compat").rglob("*"))
    assert {"COMPAT.md", "GRIDS.md", "compat.json", "compat.svg", "index.html", "schema/compat.schema.json",
            "schema/findings.schema.json"} <= set(published)
    again = Runner(workflow, project, {"inputs.full": "", "inputs.profiles || 'default dpo full'": "default"}, {}).step("plan", "plan")
    assert again["count"] == "0" and again["shards"] == "[]"  # covered now: tomorrow's run does nothing


def test_full_rerun_with_a_regression_opens_then_updates_one_issue(workflow, project):
    sim, plan, merged = run_workflow(workflow, project, "true", FAKE_UNTESTED_BELOW="0.13.0")
    assert plan["count"] == "4" and merged["regressed"] == "true"
    regressions = (project / "regressions.md").read_text()
    assert "| trl 0.12.2 + transformers 4.46.3 | latest | compatible (processing\\_class) | incompatible | import |" in regressions
    sim.step("publish", "issue")
    body = (project / "issue.md").read_text()
    assert body.startswith(regressions) and "https://github.example/o/r/actions/runs/42" in body
    sim.env["FAKE_GH_ISSUE"] = "7"
    sim.step("publish", "issue")
    calls = (project / "gh.log").read_text().splitlines()
    assert calls[1] == "issue create --title kto-compat: regression detected --body-file issue.md"
    assert calls[3] == "issue edit 7 --body-file issue.md"  # one issue, updated, never a second one

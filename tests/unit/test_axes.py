"""Axes are data: a further axis (datasets, torch) named in matrix.toml reaches every stage with no code change."""

from __future__ import annotations

import json
from pathlib import Path

import fakeproject
import pytest
from packaging.version import Version

from compat.contract import CellResult, Failure
from compat.harness import config as cfg
from compat.harness import envs, findings, plan, run
from compat.harness.reports import grid, html, junit, markdown

REPO = Path(__file__).parents[2]
KW = {"processing_class": "accepted", "tokenizer": "rejected"}


def parse(grid_body: dict, **profile: object) -> cfg.MatrixConfig:
    return cfg.parse({"profiles": {"p": {"grid": [grid_body], **profile}}}, Path("m.toml"))


# ---- config ---------------------------------------------------------------------------------


def test_any_other_grid_key_is_an_axis_in_grid_order_with_the_same_syntax_and_picks():
    g = parse({"trl": ["0.12.*"], "transformers": "4.46.3", "Datasets": ["2.*", {"spec": ">=3", "pick": "all"}],
               "torch": "2.5.1"}).profile("p").grids[0]
    assert [name for name, _ in g.all_axes] == ["trl", "transformers", "datasets", "torch"]  # canonical names
    datasets = dict(g.axes)["datasets"]
    assert str(datasets[0].spec) == "==2.*" and datasets[1].pick == "all"
    assert dict(g.axes)["torch"][0].exact == Version("2.5.1")


@pytest.mark.parametrize(("body", "message"), [
    ({"trl": "0.12.0", "transformers": "4.46.3", "datasets": "x.y"}, r"grid\[0\]\.datasets\[0\]: invalid version"),
    ({"trl": "0.12.0", "transformers": "4.46.3", "datasets": []}, r"grid\[0\]\.datasets: axis is empty"),
    ({"trl": "0.12.0", "transformers": "4.46.3", "bad name!": "1.0"}, "'bad name!' is neither an option"),
    ({"trl": "0.12.0", "transformers": "4.46.3", "datasets": "1.0", "Datasets": "2.0"}, "named twice"),
    ({"trl": "0.12.0", "datasets": "1.0"}, "missing axis 'transformers'"),
    ({"trl": "0.12.0", "transformers": "4.46.3", "datasets": {"spec": "2.*", "pick": "newest"}}, "unknown pick"),
])
def test_a_bad_axis_is_one_line_naming_the_field(body, message):
    with pytest.raises(cfg.ConfigError, match=message):
        parse(body)


def test_a_profile_from_another_adds_further_axes_to_each_of_its_grids():
    config = cfg.load(REPO / "matrix.toml")
    default, datasets = config.profile("default"), config.profile("datasets")
    assert len(datasets.grids) == len(default.grids)
    for base, g in zip(default.grids, datasets.grids, strict=True):
        assert (g.trl, g.transformers) == (base.trl, base.transformers)
        assert [name for name, _ in g.axes] == ["datasets"] and g.resolutions == ("latest",)
    with pytest.raises(cfg.ConfigError, match="a profile with 'from' adds further axes only"):
        cfg.parse({"profiles": {"a": {"grid": [{"trl": "1", "transformers": "2"}]}, "b": {"from": "a", "trl": "1"}}},
                  Path("m.toml"))
    with pytest.raises(cfg.ConfigError, match="unknown key 'datasets'"):  # without `from` a profile has no axes
        cfg.parse({"profiles": {"a": {"grid": [{"trl": "1", "transformers": "2"}], "datasets": "3"}}}, Path("m.toml"))


def test_a_misspelt_axis_is_one_line_exit_2(tmp_path):
    project = fakeproject.make(tmp_path, fakeproject.matrix((["0.12.0"], ["4.46.3"])).replace(
        'transformers = ["4.46.3"]', 'transformers = ["4.46.3"]\ndatasets = "x!"'), ["0.12.0"], ["4.46.3"])
    proc = fakeproject.compat(project, "list")
    assert proc.returncode == 2 and "profiles.default.grid[0].datasets[0]: invalid version specifier" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ---- plan, ids, cache key, requirements -----------------------------------------------------------


def test_plan_crosses_every_axis_and_ids_carry_the_further_ones(lister):
    config = parse({"trl": "0.12.*", "transformers": ["4.46.3", "5.0.0"], "datasets": ["3.*", "4.*"]})
    cells = plan.plan(config, "p", lister)
    assert [c.id for c in cells] == ["trl0.12.2-tf4.46.3-datasets3.6.0", "trl0.12.2-tf4.46.3-datasets4.0.0",
                                     "trl0.12.2-tf5.0.0-datasets3.6.0", "trl0.12.2-tf5.0.0-datasets4.0.0"]
    assert cells[0].only == "trl==0.12.2,transformers==4.46.3,datasets==3.6.0"
    assert cells[0].env_id == cells[0].id and cells[0].all_axes["datasets"] == Version("3.6.0")
    # --only reads the same spec back, a further axis alone selects its slice of the profile
    again = plan.plan(config, "p", lister, only=[cells[0].only])
    assert again == [cells[0]]
    column = plan.plan(config, "p", lister, only=["transformers==5.0.0,datasets==4.0.0"])
    assert [c.id for c in column] == ["trl0.12.2-tf5.0.0-datasets4.0.0"]
    with pytest.raises(cfg.ConfigError, match="datasets 9.9 does not exist on the package index"):
        plan.plan(config, "p", lister, only=["trl==0.12.2,transformers==5.0.0,datasets==9.9"])


def test_requirements_pin_every_axis_and_torch_is_an_ordinary_axis(lister, tmp_path):
    settings = cfg.Settings()
    ds = plan.Cell(Version("0.12.2"), Version("4.46.3"), axes=(("datasets", Version("3.6.0")),))
    assert envs.requirements(ds, settings).splitlines()[:4] == [
        "trl==0.12.2", "transformers==4.46.3", "datasets==3.6.0", "torch==2.13.0"]
    own_torch = plan.Cell(Version("0.12.2"), Version("4.46.3"), axes=(("torch", Version("2.5.1")),))
    assert "torch==2.5.1" in envs.requirements(own_torch, settings).splitlines()
    assert "torch==2.13.0" not in envs.requirements(own_torch, settings)
    # as-of-release resolves torch like any other package once the config no longer exempts it
    dated = plan.Cell(Version("0.12.2"), Version("4.46.3"), "as-of-release", released="2025-01-01T00:00:00Z")
    assert "torch==2.13.0" in envs.requirements(dated, settings).splitlines()
    free = cfg.Settings(as_of_release_exempt=("pytest",))
    assert "torch" in envs.requirements(dated, free).splitlines() and "torch==" not in envs.requirements(dated, free)
    forced = plan.Cell(Version("0.12.2"), Version("5.0.0"), forced=True, axes=(("datasets", Version("4.0.0")),))
    envs.resolution_args(forced, settings, tmp_path)
    assert (tmp_path / "overrides.txt").read_text() == "trl==0.12.2\ntransformers==5.0.0\ndatasets==4.0.0\n"


def test_the_cache_key_holds_the_axes_and_keeps_two_axis_keys():
    import hashlib

    settings = cfg.Settings()
    pair = plan.Cell(Version("0.12.2"), Version("4.46.3"))
    # the key a two-axis cell had before further axes existed
    parts = ("0.12.2", "4.46.3", "latest", "kto", "3.11", "2.13.0", "suite", "", "idx", *settings.cell_requirements)
    assert run.cache_key(pair, settings, "suite", "idx") == hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]
    keys = {run.cache_key(plan.Cell(pair.trl, pair.transformers, axes=(("datasets", Version(v)),)), settings, "suite", "idx")
            for v in ("3.6.0", "4.0.0")}
    assert len(keys | {run.cache_key(pair, settings, "suite", "idx")}) == 3
    torch = plan.Cell(pair.trl, pair.transformers, axes=(("torch", Version("2.5.1")),))
    assert run.cache_key(torch, settings, "suite", "idx") != run.cache_key(pair, settings, "suite", "idx")


# ---- results and reports --------------------------------------------------------------------


def _cell(trl: str, tf: str, datasets: str | None, status: str = "compatible", **kw: object) -> CellResult:
    env = {"python": "3.11.7", "torch": "2.13.0+cpu", "trl": trl, "transformers": tf, **({"datasets": datasets} if datasets else {})}
    extra = {"keyword": KW, "import_path": "trl", "format_mode": "text"} if status == "compatible" else {}
    return CellResult(trl, tf, "latest", status, axes={"datasets": datasets} if datasets else {}, environment=env,
                      **extra, **kw)  # type: ignore[arg-type]


BROKEN = Failure("import", "ImportError: cannot import name 'X' from 'datasets'", "trl.trainer.kto_trainer.<module>")
RESULTS = [_cell("0.12.2", "4.46.3", "3.6.0"), _cell("0.12.2", "4.46.3", "2.21.0"),
           _cell("0.12.2", "4.45.2", "3.6.0", "incompatible", failure=BROKEN), _cell("0.12.2", "4.46.3", None)]


def test_the_grid_is_drawn_once_per_further_axis_value_newest_first():
    sections = grid.sections(RESULTS)
    assert [s.title for s in sections] == ["KTOTrainer, resolution: latest",
                                           "KTOTrainer, resolution: latest, datasets 3.6.0",
                                           "KTOTrainer, resolution: latest, datasets 2.21.0"]
    assert [c.id for c in grid.ordered(RESULTS)] == [
        "trl0.12.2-tf4.46.3", "trl0.12.2-tf4.46.3-datasets3.6.0", "trl0.12.2-tf4.45.2-datasets3.6.0",
        "trl0.12.2-tf4.46.3-datasets2.21.0"]


def test_markdown_page_and_junit_name_the_axis_value():
    doc = markdown.document(RESULTS, {"profile": "p"})
    assert "## KTOTrainer, resolution: latest, datasets 3.6.0" in doc
    assert "'datasets==3.6.0'" in doc  # the install line of a datasets cell pins it
    assert "trl 0.12.2 + transformers 4.45.2 + datasets 3.6.0" in markdown.grids_document(RESULTS, {})
    data = html.page_data(RESULTS, {})
    by_title = {s["title"]: s for s in data["sections"]}
    assert by_title["KTOTrainer, resolution: latest, datasets 2.21.0"]["axes"] == {"datasets": "2.21.0"}
    assert "axes" not in by_title["KTOTrainer, resolution: latest"]
    ids = [c["id"] for c in data["cells"]]
    assert "trl0.12.2-tf4.46.3-datasets2.21.0" in ids
    # every install line of a datasets cell names its axis value (a lock line names it in the PAIR)
    broken = next(c for c in data["cells"] if c["id"] == "trl0.12.2-tf4.45.2-datasets3.6.0")
    assert broken["pip"] == "pip install 'trl==0.12.2' 'transformers==4.45.2' 'datasets==3.6.0'"
    assert all("datasets==" in c["pip"] for c in data["cells"] if "-datasets" in c["id"])
    xml = junit.document(RESULTS)
    assert '<property name="datasets" value="3.6.0"' in xml


def test_findings_carry_the_axis_where_measured_and_check_answers_for_it(tmp_path):
    data = findings.build(RESULTS)
    assert [e["axes"] for e in data["by_axes"]] == [{"datasets": "2.21.0"}, {"datasets": "3.6.0"}]
    assert data["working"] == [["0.12.2", "4.46.3"]]  # the pair's own facts come from the two-axis cell
    # what the cells ran on is said even where every cell has a further axis
    assert findings.build(RESULTS[:3])["generated_from"]["torch"] == "2.13.0+cpu"
    rows = {tuple(r[9].items()) if len(r) > 9 else (): r for r in data["environments"]["cells"]}
    assert (("datasets", "2.21.0"),) in rows and () in rows
    path = tmp_path / "findings.json"
    path.write_text(findings.dumps(data))
    ok = _check(path, "--pair", "trl==0.12.2,transformers==4.46.3,datasets==2.21.0")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("trl 0.12.2 + transformers 4.46.3 + datasets 2.21.0: measured compatible")
    assert "'datasets==2.21.0'" in ok.stdout
    broken = _check(path, "--pair", "trl==0.12.2,transformers==4.45.2,datasets==3.6.0")
    assert broken.returncode == 1 and "BROKEN (incompatible)" in broken.stdout and "from 'datasets'" in broken.stdout
    unknown = _check(path, "--pair", "trl==0.12.2,transformers==4.46.3,datasets==4.0.0")
    assert unknown.returncode == 3 and "datasets 4.0.0 was not measured (measured: 2.21.0, 3.6.0)" in unknown.stdout
    # a requirements file pinning the axis at a measured value is answered from that value's cells
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.12.2\ntransformers==4.45.2\ndatasets==3.6.0\n")
    pinned = _check(path, "--requirements", str(req))
    assert pinned.returncode == 1 and "BROKEN (incompatible)" in pinned.stdout and "datasets 3.6.0" in pinned.stdout


def test_a_pinned_axis_value_with_no_cell_of_the_pair_leaves_the_pair_to_its_own_cells(tmp_path):
    """datasets 3.6.0 was measured as an axis, but not for trl 0.13.0: that pair's own cell answers."""
    env = {"python": "3.11.7", "torch": "2.13.0+cpu", "trl": "0.13.0", "transformers": "4.46.3", "datasets": "3.6.0"}
    other = CellResult("0.13.0", "4.46.3", "latest", "compatible", environment=env, keyword=KW, import_path="trl",
                       format_mode="text")
    path = tmp_path / "findings.json"
    path.write_text(findings.dumps(findings.build([*RESULTS, other])))
    req = tmp_path / "requirements.txt"
    req.write_text("trl==0.13.0\ntransformers==4.46.3\ndatasets==3.6.0\n")
    answer = _check(path, "--requirements", str(req))
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert answer.stdout.startswith("trl 0.13.0 + transformers 4.46.3: measured compatible"), answer.stdout


def test_the_installed_check_answers_at_the_installed_axis_version_where_it_was_measured():
    from compat.cli import check

    data = findings.build(RESULTS)
    assert check.installed_axes({"datasets": ["2.21.0"], "trl": ["0.12.2"]}, data) == {"datasets": "2.21.0"}
    assert check.installed_axes({"datasets": ["9.0.0"]}, data) == {}  # unmeasured: the comparison names it
    assert check.installed_axes({}, data) == {} and check.installed_axes({"datasets": ["2.21.0"]}, {}) == {}


def _check(path: Path, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "compat", "check", "--findings", str(path), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


# ---- the must-show: a copy of matrix.toml with a datasets axis, through the whole pipeline -----------------


def test_a_datasets_axis_in_a_copy_of_matrix_toml_runs_cells_that_show_it(tmp_path):
    text = (REPO / "matrix.toml").read_text() + (
        '\n[profiles.axis]\ndescription = "a third axis, added in data alone"\n'
        '[[profiles.axis.grid]]\ntrl = ["0.12.*"]\ntransformers = ["4.46.*"]\ndatasets = ["2.*", "3.*"]\n')
    project = fakeproject.make(tmp_path, text, ["0.12.0", "0.12.2"], ["4.45.2", "4.46.3"])
    (project / ".compat" / "index" / "datasets.json").write_text(json.dumps(fakeproject.listing("2.21.0", "3.6.0")))
    listed = fakeproject.compat(project, "list", "--profile", "axis")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["trl0.12.2-tf4.46.3-datasets2.21.0", "trl0.12.2-tf4.46.3-datasets3.6.0"]
    out = tmp_path / "out"
    ran = fakeproject.compat(project, "matrix", "--profile", "axis", "--out", str(out), "-j", "1", FAKE_ENV_FROM_LOCK="1")
    assert ran.returncode == 0, ran.stderr
    cells = json.loads((out / "compat.json").read_text())["cells"]
    for c in cells:  # the version installed is the one the axis asked for
        assert c["axes"] == {"datasets": c["environment"]["datasets"]} and c["status"] == "compatible"
    assert sorted(c["axes"]["datasets"] for c in cells) == ["2.21.0", "3.6.0"]
    page = (out / "compat.html").read_text()
    assert "datasets 3.6.0" in page and "trl0.12.2-tf4.46.3-datasets2.21.0" in page
    assert "datasets 2.21.0" in (out / "COMPAT.md").read_text()
    made = fakeproject.compat(project, "findings", "--results", str(out), "-o", str(tmp_path / "f.json"), config=False)
    assert made.returncode == 0, made.stderr
    answer = _check(tmp_path / "f.json", "--pair", "trl==0.12.2,transformers==4.46.3,datasets==3.6.0")
    assert "trl 0.12.2 + transformers 4.46.3 + datasets 3.6.0: measured compatible" in answer.stdout


# ---- the published table under the new schema ------------------------------------------------------


def test_the_published_v2_table_rewritten_as_v3_keeps_every_status_and_keyword_cell_for_cell():
    from compat.harness.documents import SCHEMA_VERSION, dumps_document, load_document, loads_document

    published = REPO / "docs" / "compat" / "compat.json"
    whole = load_document(published)
    # The pair's own cells (the published table also holds the datasets profile's, which have an axis).
    old = type(whole)(whole.meta, tuple(c for c in whole.cells if not c.axes))
    text = dumps_document(old.meta, old.cells)
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert all("trl" in c and "transformers" in c and "axes" not in c for c in data["cells"])  # old readers still read it
    new = loads_document(text, "rewritten")
    before = {c.id: (c.status, c.keyword) for c in old.cells}
    after = {c.id: (c.status, c.keyword) for c in new.cells}
    assert len(after) == len(old.cells) and after == before
    # the grids read the same: no further axis, so no section changes its title or its cells
    assert [(s.title, s.trls, s.tfs) for s in grid.sections(new.cells)] == \
        [(s.title, s.trls, s.tfs) for s in grid.sections(old.cells)]
    assert all(not s.axes for s in grid.sections(new.cells))

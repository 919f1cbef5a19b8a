"""Platform-bound failures: candidates chosen by measurement, a rerun with the fact changed, and the mark
set only where the failure moved (compat/harness/platform.py, `kto-compat platform`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import fakeproject
import pytest

from compat.contract import CellResult, Failure, Stage, Status
from compat.harness import platform as bound
from compat.harness.documents import dumps_cell, load_cell, load_document

FUSED = "trl.trainer.utils.add_fused_lm_head.<locals>._fused_forward"
APPLY = "AttributeError: 'NoneType' object has no attribute 'apply'"


def failed(trl: str = "1.15.0", tf: str = "5.16.1", *, stage: Stage = Stage.TRAIN, message: str = APPLY,
           raised_by: str | None = FUSED, triton: str | None = "not importable", **kw) -> CellResult:
    probes = {"platform.triton": triton, "platform.device": "cpu"} if triton else {}
    return CellResult(trl, tf, "latest", Status.INCOMPATIBLE, failure=Failure(stage, message, raised_by),
                      environment={"trl": trl, "transformers": tf, "torch": "2.13.0+cpu", "python": "3.11.9"},
                      probes=probes, suite="s1", **kw)


def trains(cell: CellResult) -> CellResult:
    return replace(cell, status=Status.COMPATIBLE, failure=None)


def env_with(root: Path, name: str, dists: dict[str, str], files: dict[str, str]) -> Path:
    site = root / name / "lib" / "python3.11" / "site-packages"
    for dist, version in dists.items():
        (site / f"{dist}-{version}.dist-info").mkdir(parents=True)
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return site


TRL_UTILS = {"trl/__init__.py": "", "trl/trainer/__init__.py": "",
             "trl/trainer/utils.py": "if is_triton_available():\n    import triton\n"}
TORCH_MODULE = {"torch/__init__.py": "", "torch/nn/__init__.py": "", "torch/nn/modules/__init__.py": "",
                "torch/nn/modules/module.py": "class Module: ...  # tritonic is not the word\n"}


def test_the_raising_module_is_the_longest_dotted_prefix_that_is_a_file(tmp_path):
    site = env_with(tmp_path, "e", {}, {**TRL_UTILS, "trl/models/__init__.py": "x = 1\n"})
    assert bound.module_file(site, FUSED) == site / "trl/trainer/utils.py"
    assert bound.module_file(site, "trl.models.Thing.method") == site / "trl/models/__init__.py"
    assert bound.module_file(site, "numpy.core.thing") is None


def test_only_failures_at_building_or_training_with_the_fact_off_are_candidates():
    assert bound.eligible(failed(), bound.TRITON)
    assert bound.eligible(failed(stage=Stage.CONSTRUCT), bound.TRITON)
    assert not bound.eligible(failed(stage=Stage.IMPORT), bound.TRITON)
    assert not bound.eligible(failed(triton="importable"), bound.TRITON)
    assert not bound.eligible(failed(triton=None), bound.TRITON)  # a cell that did not record the fact
    assert not bound.eligible(failed(raised_by=None), bound.TRITON)
    assert not bound.eligible(trains(failed()), bound.TRITON)
    drift = replace(failed(), failure=replace(failed().failure, drift=True))
    assert not bound.eligible(drift, bound.TRITON)


def test_the_raiser_is_read_once_per_release_from_any_environment_holding_it(tmp_path):
    env_with(tmp_path / "envs", "trl1.15.0-tf5.16.1", {"trl": "1.15.0", "torch": "2.13.0+cpu"}, {**TRL_UTILS, **TORCH_MODULE})
    lookup = bound.RaiserLookup([tmp_path / "envs", tmp_path / "absent"])
    assert lookup(failed(tf="4.57.0"), "triton") is True  # another transformers: the same trl file
    assert lookup(failed(raised_by="torch.nn.modules.module.Module.__getattr__"), "triton") is False
    assert lookup(failed(trl="1.14.0"), "triton") is None  # no environment here holds trl 1.14.0
    env_with(tmp_path / "envs", "trl1.14.0-tf5.16.1", {"trl": "1.14.0"}, {"trl/trainer/utils.py": "plain = 1\n"})
    assert lookup(failed(trl="1.14.0"), "triton") is False  # unanswered questions look again


def test_a_failure_that_moves_is_marked_with_the_measured_reason():
    before = failed()
    after = replace(before, failure=Failure(Stage.TRAIN, "RuntimeError: 0 active drivers ([]). There should only be one."))
    out = bound.marked(before, bound.TRITON, "3.7.1", after)
    assert out.failure.platform.startswith("triton is not importable with this torch build")
    assert "triton 3.7.1" in out.failure.platform and "0 active drivers" in out.failure.platform
    assert replace(out, failure=replace(out.failure, platform=None)) == before  # nothing else of the cell changes
    assert "it trains" in bound.marked(before, bound.TRITON, "3.7.1", trains(before)).failure.platform


def test_a_failure_that_reproduces_carries_no_mark_and_an_erring_rerun_changes_nothing():
    before = replace(failed(), failure=replace(failed().failure, platform="stale mark"))
    same = replace(before, failure=Failure(Stage.TRAIN, APPLY + "\nother traceback lines"), seconds=9.0)
    assert bound.marked(before, bound.TRITON, "3.7.1", same).failure.platform is None
    fault = replace(before, status=Status.ERROR, failure=Failure(Stage.INSTALL, "no network", "uv", fault="network"))
    assert bound.moved(before, fault) is None
    assert bound.marked(before, bound.TRITON, "3.7.1", fault) == before


def test_remeasure_reruns_only_candidates_whose_raiser_mentions_the_distribution():
    cells = [failed(), failed(tf="5.0.0", raised_by="torch.nn.modules.module.Module.__getattr__"),
             failed(tf="4.99.0", stage=Stage.IMPORT), trains(failed(tf="4.57.0"))]
    measured: list[str] = []

    def measure(cell: CellResult) -> CellResult:
        measured.append(cell.id)
        return trains(cell)

    mentioned = {cells[0].id: True, cells[1].id: False}
    outcomes = bound.remeasure(cells, bound.TRITON, "3.7.1", lambda c: mentioned.get(c.id), measure, jobs=2)
    assert measured == [cells[0].id]
    assert [o.cell.failure.platform is not None if o.cell.failure else None for o in outcomes] == [True, False, False, None]
    assert [o.rerun is not None for o in outcomes] == [True, False, False, False]
    merged = bound.merged(cells, {outcomes[0].cell.id: outcomes[0]})
    assert merged[0].failure.platform and merged[1:] == cells[1:]


def test_the_cells_pins_come_from_its_lock_else_its_kept_pins(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("# pins\ntrl==1.15.0\ntorch==2.13.0+cpu\n")
    assert bound.lock_pins(failed(), [tmp_path], kept) == ("trl==1.15.0", "torch==2.13.0+cpu")
    assert bound.lock_pins(failed(), [tmp_path], None) == ()
    (tmp_path / "state" / "locks").mkdir(parents=True)
    (tmp_path / "state" / "locks" / "0123456789abcdef.txt").write_text("trl==1.15.0\nnumpy==2.3.0\n")
    locked = replace(failed(), lock="0123456789abcdef")
    assert bound.lock_pins(locked, [tmp_path / "results", tmp_path / "state"], kept) == ("trl==1.15.0", "numpy==2.3.0")


@pytest.fixture
def project(tmp_path):
    root = fakeproject.make(tmp_path, fakeproject.matrix((["1.15.0"], ["5.16.1", "5.0.0"])), ["1.15.0"], ["5.16.1", "5.0.0"])
    env_with(root / ".compat" / "envs", "trl1.15.0-tf5.16.1", {"trl": "1.15.0", "torch": "2.13.0+cpu"},
             {**TRL_UTILS, **TORCH_MODULE})
    results = root / "results"
    cells = [replace(failed(), lock="0123456789abcdef"), failed(tf="5.0.0", raised_by="torch.nn.modules.module.Module.__getattr__"),
             trains(failed(tf="4.57.0"))]
    (results / "cells").mkdir(parents=True)
    (results / "locks").mkdir()
    (results / "locks" / "0123456789abcdef.txt").write_text("trl==1.15.0\ntransformers==5.16.1\nnumpy==2.3.0\n")
    for c in cells:
        (results / "cells" / f"{c.id}.json").write_text(dumps_cell(c))
    return root


def test_the_platform_command_marks_the_cell_whose_failure_moves_and_keeps_the_rest(project):
    done = fakeproject.compat(project, "platform", "--results", str(project / "results"), "--with", "triton==3.7.1")
    assert done.returncode == 0, done.stderr
    assert "2 cell(s) failed building or training with platform.triton = not importable" in done.stderr
    moved = load_cell(project / "results" / "cells" / "trl1.15.0-tf5.16.1.json")
    assert moved.status == Status.INCOMPATIBLE and moved.failure.message == APPLY  # the verdict as measured
    assert moved.failure.platform == ("triton is not importable with this torch build "
                                      "(with triton 3.7.1 installed it trains)")
    other = load_cell(project / "results" / "cells" / "trl1.15.0-tf5.0.0.json")
    assert other.failure.platform is None  # its raiser (torch's Module) never mentions triton: not rerun
    doc = load_document(project / "results" / "compat.json")
    assert {c.id: bool(c.failure and c.failure.platform) for c in doc.cells} == {
        "trl1.15.0-tf5.16.1": True, "trl1.15.0-tf5.0.0": False, "trl1.15.0-tf4.57.0": False}
    # The rerun ran in an environment of its own: the cell's requirements plus triton, never its own environment.
    pins = project / ".compat" / "platform" / "triton-3.7.1" / "envs" / "trl1.15.0-tf5.16.1" / ".compat-pins.txt"
    assert {"triton==3.7.1", "numpy==2.3.0"} <= set(pins.read_text().splitlines())  # the cell's lock + triton
    assert moved.lock == "0123456789abcdef"
    assert not (project / ".compat" / "envs" / "trl1.15.0-tf5.16.1" / "bin").exists()
    assert not (project / "results" / "logs").exists()  # the rerun's log stays out of the published results


def test_a_rerun_that_errs_marks_nothing(project):
    done = fakeproject.compat(project, "platform", "--results", str(project / "results"), "--with", "triton==3.7.1",
                              FAKE_SYNC_FAIL="No space left on device (os error 28)")
    assert done.returncode == 1
    assert "rerun erred" in done.stderr
    assert not (project / "results" / "compat.json").exists()
    assert load_cell(project / "results" / "cells" / "trl1.15.0-tf5.16.1.json").failure.platform is None


def test_with_takes_an_exact_triton_only(project):
    done = fakeproject.compat(project, "platform", "--results", str(project / "results"), "--with", "numpy==2.0")
    assert done.returncode == 2 and "--with 'numpy==2.0': expected triton==VERSION" in done.stderr


def test_reports_show_a_platform_bound_failure_apart_from_a_broken_pair():
    from compat.harness.reports import html, markdown

    bound_cell = bound.marked(failed(), bound.TRITON, "3.7.1", trains(failed()))
    broken = failed(tf="5.0.0", raised_by="torch.nn.modules.module.Module.__getattr__", message="AttributeError: x")
    cells = [bound_cell, broken]
    text = markdown.document(cells, {"generated": "2026-12-06T00:00:00Z", "profile": "default"})
    causes = text.split("## Installs but breaks, by cause")[1].split("##")[0]
    assert "AttributeError: x" in causes and "apply" not in causes  # only the broken pair is a cause
    section = text.split("## Fails on CPU only (platform-bound)")[1].split("\n## ")[0]
    assert "1 cell fails on CPU** (trl 1.15.0) at train" in section and "triton is not importable" in section
    assert "🖥️ fails on CPU (train)" in text  # the grid cell
    assert "- 🖥️ **fails on CPU**:" in text  # the legend
    row = next(ln for ln in text.splitlines() if ln.startswith("- **trl 1.15.0**"))
    assert "1 of its cells 🖥️ fails on CPU only (platform-bound, not the pair)" in row and "(1 fails on CPU, 1 incompatible)" in row
    grids = markdown.grids_document(cells, {})
    assert "| fails on CPU: triton is not importable" in grids
    data = html.page_data(cells, {})
    assert data["counts"]["platform"] == 1 and data["counts"]["incompatible"] == 1
    assert data["statuses"]["platform"]["name"] == "fails on CPU"

"""Drift, declared-vs-actual, resolution modes and what the report says about them."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from compat.cell.trace import describe, drift_of
from compat.contract import CellResult, Drift, Failure, verdict
from compat.harness import config as cfg
from compat.harness.envs import as_of, declared_in_env, declared_in_message, resolution_args
from compat.harness.plan import Cell, plan
from compat.harness.reports import markdown, vocab


def raised_in(module: str, exc: BaseException) -> BaseException:
    """``exc`` as raised by code of ``module`` (the frame the cell's traceback would end in)."""
    try:
        exec("raise exc", {"__name__": module, "exc": exc})  # noqa: S102 - a frame that belongs to `module`
    except BaseException as raised:  # noqa: BLE001
        return raised
    raise AssertionError("not raised")


# Drift is classified inside the cell (compat/cell/trace.py drift_of), from the exception itself;
# the cell records it with the import failure only.
@pytest.mark.parametrize(("exc", "raised_by", "drift"), [
    (ModuleNotFoundError("No module named 'rich'", name="rich"), "trl.trainer.utils", True),
    (AttributeError("module 'pyarrow' has no attribute 'PyExtensionType'"), "datasets.features.features", True),
    (ImportError("cannot import name 'X' from 'transformers'", name="transformers"), "trl.trainer.utils", False),
    (ModuleNotFoundError("No module named 'transformers.foo'", name="transformers.foo"), "trl.x", False),
])
def test_drift_is_about_third_party_packages(exc, raised_by, drift):
    error = raised_in(raised_by, exc)
    found = drift_of(error)
    assert (found is not None) is drift
    record = describe(error)
    assert record["raised_by"].startswith(raised_by)
    message, where = record["message"], record["raised_by"]
    assert verdict({"failures": {"import": {"message": message, "raised_by": where, "drift": found}}})[1].drift \
        == (Drift(found["kind"], found["package"], found["importer"]) if drift else None)
    assert verdict({"failures": {"construct": {"message": message, "raised_by": where}}})[1].drift is None


def test_verdict_marks_drift():
    error = raised_in("trl.trainer.utils", ModuleNotFoundError("No module named 'rich'", name="rich"))
    obs = {"failures": {"import": {"message": "ModuleNotFoundError: No module named 'rich'", "raised_by": "trl.trainer.utils.<module>",
                                   "drift": drift_of(error)}}}
    status, failure = verdict(obs)
    assert status == "incompatible" and failure.drift
    assert (failure.drift.kind, failure.drift.package, failure.drift.importer) == ("undeclared-dependency", "rich", "trl.trainer.utils")


def test_declared_requirement_from_env_metadata_and_from_refusal(tmp_path):
    meta = tmp_path / "lib" / "python3.11" / "site-packages" / "trl-0.11.4.dist-info" / "METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Name: trl\nRequires-Dist: transformers>=4.40.0\nRequires-Dist: transformers<5; extra == 'x'\n")
    assert declared_in_env(tmp_path) == ">=4.40.0"
    msg = "No solution found: Because trl==0.12.0 depends on transformers>=4.46.0 and you require trl==0.12.0"
    assert declared_in_message(msg) == ">=4.46.0"
    r = CellResult("0.12.2", "4.45.2", "latest", "incompatible", failure=Failure("construct", "TypeError"), declared=">=4.40.0")
    assert r.declared_ok is True
    assert "too loose" in "\n".join(markdown.metadata_vs_actual([r]))


def test_as_of_release_and_force_flags(tmp_path):
    cell = Cell(Version("0.11.4"), Version("4.45.2"), "as-of-release", released="2024-10-15T08:44:57.147338Z")
    args = resolution_args(cell, cfg.Settings(), tmp_path)
    assert args[:2] == ["--exclude-newer", "2024-10-16T08:44:57Z"] == ["--exclude-newer", as_of(cell.released)]
    assert any(a.startswith("torch=") for a in args)
    forced = Cell(Version("0.12.0"), Version("4.45.2"), forced=True)
    args = resolution_args(forced, cfg.Settings(), tmp_path)
    assert args == ["--override", str(tmp_path / "overrides.txt")]
    assert (tmp_path / "overrides.txt").read_text() == "trl==0.12.0\ntransformers==4.45.2\n"
    assert forced.id.endswith("-forced")


def test_grid_resolution_and_index_facts(lister):
    config = cfg.parse({"profiles": {"p": {"grid": [
        {"trl": "0.12.*", "transformers": "4.46.3"},
        {"trl": "0.11.4", "transformers": "4.46.3", "resolution": ["latest", "as-of-release"]},
    ]}}}, Path("m.toml"))
    cells = plan(config, "p", lister)
    assert [c.id for c in cells] == ["trl0.11.4-tf4.46.3-as-of-release", "trl0.11.4-tf4.46.3", "trl0.12.2-tf4.46.3"]
    assert all(c.released for c in cells)
    yanked = plan(config, "p", lister, only=["trl==0.12.1,transformers==4.46.3"])
    assert yanked[0].yanked == ("trl",)


def test_report_says_which_mode_works_and_flags_drift():
    # The adapter column reports what the cell measured the adapter doing (tests/cell/kto/test_adapter.py
    # records it), no longer a plan derived from the keyword states.
    refused = "load_kto raises BrokenPairError explaining the dependency drift: trl.trainer.utils needs rich"
    latest = CellResult("0.11.4", "4.45.2", "latest", "incompatible",
                        failure=Failure("import", "ModuleNotFoundError: No module named 'rich'", "trl.trainer.utils.<module>", True),
                        adapter="pass", adapter_outcome="refused", adapter_detail={"refused": refused})
    trained = "33 boundary rows formatted (text rows) and trained 3 BF16 steps of 4; 8 invalid rows refused up front"
    aor = CellResult("0.11.4", "4.45.2", "as-of-release", "compatible", keyword={"processing_class": "rejected", "tokenizer": "accepted"},
                     formatter={"legacy": {"a": "error:IndexError", "b": "pass"}},
                     adapter="pass", adapter_outcome="trained", adapter_detail={"trained": trained})
    md = markdown.document([latest, aor], {"profile": "default"})
    assert "❌ incompatible (import, drift)" in md
    assert "works with as-of-release resolution" in md
    assert "a third-party dependency moved under the pair" in md  # Drift("unknown").describe(): drift=True
    assert markdown.adapter_text(aor) == f"pass: trained: {trained}"
    assert markdown.adapter_text(latest).startswith("pass: refused: load_kto raises BrokenPairError")
    assert f"| {vocab.md(markdown.adapter_text(latest))} |" in markdown.grids_document([latest, aor], {})  # failing cells' table

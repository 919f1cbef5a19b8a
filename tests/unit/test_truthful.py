"""Drift, declared-vs-actual, resolution modes and what the report says about them."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from compat.harness import config as cfg
from compat.harness import report
from compat.harness.envs import as_of, declared_in_env, declared_in_message, resolution_args
from compat.harness.plan import Cell, plan
from compat.harness.results import CellResult, Failure, is_drift, verdict


@pytest.mark.parametrize(("message", "raised_by", "drift"), [
    ("ModuleNotFoundError: No module named 'rich'", "trl.trainer.utils.<module>", True),
    ("AttributeError: module 'pyarrow' has no attribute 'PyExtensionType'", "datasets.features.features.<module>", True),
    ("ImportError: cannot import name 'X' from 'transformers'", "trl.trainer.utils.<module>", False),
    ("ModuleNotFoundError: No module named 'transformers.foo'", "trl.x.<module>", False),
])
def test_drift_is_about_third_party_packages(message, raised_by, drift):
    assert is_drift("import", message, raised_by) is drift
    assert is_drift("construct", message, raised_by) is False


def test_verdict_marks_drift():
    obs = {"failures": {"import": {"message": "ModuleNotFoundError: No module named 'rich'", "raised_by": "trl.trainer.utils.<module>"}}}
    status, failure = verdict(obs)
    assert status == "incompatible" and failure.drift


def test_declared_requirement_from_env_metadata_and_from_refusal(tmp_path):
    meta = tmp_path / "lib" / "python3.11" / "site-packages" / "trl-0.11.4.dist-info" / "METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Name: trl\nRequires-Dist: transformers>=4.40.0\nRequires-Dist: transformers<5; extra == 'x'\n")
    assert declared_in_env(tmp_path) == ">=4.40.0"
    msg = "No solution found: Because trl==0.12.0 depends on transformers>=4.46.0 and you require trl==0.12.0"
    assert declared_in_message(msg) == ">=4.46.0"
    r = CellResult("0.12.2", "4.45.2", "latest", "incompatible", failure=Failure("construct", "TypeError"), declared=">=4.40.0")
    assert r.declared_ok is True
    assert "too loose" in "\n".join(report.metadata_vs_actual([r]))


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
    latest = CellResult("0.11.4", "4.45.2", "latest", "incompatible",
                        failure=Failure("import", "ModuleNotFoundError: No module named 'rich'", "trl.trainer.utils.<module>", True))
    aor = CellResult("0.11.4", "4.45.2", "as-of-release", "compatible", keyword={"processing_class": "rejected", "tokenizer": "accepted"},
                     formatter={"legacy": {"a": "error:IndexError", "b": "pass"}})
    md = report.markdown([latest, aor], {"profile": "default"})
    assert "❌ incompatible (import, drift)" in md
    assert "works with as-of-release resolution" in md
    assert "a dependency drifted under it" in md
    assert report.adapter_action(aor) == "translates processing_class= to tokenizer=; formats rows itself (the old format_dataset fails 1 of 2 cases)"
    assert report.adapter_action(latest).startswith("refuses with advice")

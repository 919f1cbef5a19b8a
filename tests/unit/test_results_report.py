from __future__ import annotations

import json

import pytest

from compat.harness import report
from compat.harness.envs import first_error_line, index_args, is_network_error
from compat.harness.config import Settings
from compat.harness.results import CellResult, Failure, read_result, verdict, write_json

TRAINED = {"import_path": "trl", "keyword": {"processing_class": "accepted", "tokenizer": "rejected"},
           "training": {"losses": [0.69, 0.68, 0.7]}, "failures": {}}


def test_verdict_compatible_needs_import_keyword_and_finite_losses():
    assert verdict(TRAINED) == ("compatible", None)
    nan = {**TRAINED, "training": {"losses": [0.7, float("nan"), 0.6]}}
    assert verdict(nan)[0] == "incompatible" and verdict(nan)[1].stage == "train"
    rejected = {**TRAINED, "keyword": {"processing_class": "rejected", "tokenizer": "rejected"}, "training": None,
                "failures": {"construct": {"message": "TypeError: x", "raised_by": "trl.trainer.kto_trainer.KTOTrainer.__init__"}}}
    status, failure = verdict(rejected)
    assert (status, failure.stage, failure.raised_by) == ("incompatible", "construct", "trl.trainer.kto_trainer.KTOTrainer.__init__")


def test_earliest_stage_wins():
    obs = {"failures": {"train": {"message": "b"}, "import": {"message": "a"}}}
    assert verdict(obs)[1] == Failure("import", "a", None)


def test_round_trip_and_corrupt_files(tmp_path):
    r = CellResult("0.12.2", "4.46.3", "latest", "incompatible", failure=Failure("construct", "TypeError: boom", "x.Y.z"),
                   keyword={"processing_class": "rejected", "tokenizer": "accepted"}, warnings=({"stage": "import", "category": "FutureWarning", "message": "m"},))
    path = tmp_path / "r.json"
    write_json(path, r.serialize())
    assert read_result(path) == r
    assert r.use_keyword() == "tokenizer"
    path.write_text(path.read_text()[:40])  # truncated
    assert read_result(path) is None
    path.write_text(json.dumps({"trl": "1", "transformers": "2", "resolution": "latest", "status": "bogus"}))
    assert read_result(path) is None


def test_keyword_choice_prefers_accepted_then_new_name():
    r = CellResult("1", "2", "latest", "compatible", keyword={"processing_class": "accepted", "tokenizer": "deprecated"})
    assert r.use_keyword() == "processing_class"
    r = CellResult("1", "2", "latest", "compatible", keyword={"processing_class": "rejected", "tokenizer": "deprecated"})
    assert r.use_keyword() == "tokenizer"


def test_markdown_grid_and_untrusted_text_is_inert():
    evil = "<script>alert(1)</script> | `rm -rf` \n second line"
    results = [
        CellResult("0.12.2", "4.46.3", "latest", "compatible", keyword={"processing_class": "accepted", "tokenizer": "rejected"}),
        CellResult("0.11.4", "4.46.3", "latest", "incompatible", failure=Failure("import", evil, "trl.x")),
        CellResult("1.0.0", "4.45.2", "latest", "unresolvable", failure=Failure("resolve", "No solution found", "uv")),
    ]
    md = report.markdown(results, {"profile": "default"})
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\n second line" not in md  # only the first line, and never a raw newline in a row
    assert "\n" not in report.md_escape("a\nb|c") and "\\|" in report.md_escape("a|b")
    grid = [ln for ln in md.splitlines() if ln.startswith("| **")]
    assert [ln.count(" | ") for ln in grid] == [2, 2, 2]  # TRL column + 2 transformers columns, intact
    assert "✅ processing_class" in md and "⛔ unresolvable (resolve)" in md
    fails = md.split("## Failing cells")[1]
    assert fails.index("0.11.4") < fails.index("1.0.0")  # installs-but-breaks first
    doc = report.document(results, {"profile": "default"})
    assert doc["schema_version"] == 1 and [c["trl"] for c in doc["cells"]] == ["0.11.4", "0.12.2", "1.0.0"]


def test_pip_settings_reach_uv():
    env = {"PIP_INDEX_URL": "https://idx/simple", "PIP_EXTRA_INDEX_URL": "https://a https://b", "PIP_FIND_LINKS": "/opt/wheels"}
    assert index_args(Settings(), env) == ["--index-url", "https://idx/simple", "--extra-index-url", "https://a",
                                           "--extra-index-url", "https://b", "--find-links", "/opt/wheels"]
    assert index_args(Settings(), {}) == []


@pytest.mark.parametrize(("text", "net"), [
    ("error: Failed to fetch: `http://127.0.0.1:9/simple/trl/`\n  Caused by: tcp connect error", True),
    ("× No solution found when resolving dependencies:\n╰─▶ Because trl==1 depends on x", False),
])
def test_network_faults_are_told_apart(text, net):
    assert is_network_error(text) is net
    assert "\n" not in first_error_line(text)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compat.contract import CellResult, Failure, verdict
from compat.harness.config import Settings
from compat.harness.documents import dumps_document
from compat.harness.envs import first_error_line, index_args, is_network_error
from compat.harness.files import write_json
from compat.harness.reports import markdown, vocab
from compat.harness.run import read_cached

# Observations as fold_observations leaves them: probes under "probes"; a verdict of compatible
# also needs 3+ BF16 steps with finite losses and the adapter check passed.
TRAINED = {"probes": {"import_path": "trl", "keyword.processing_class": "accepted", "keyword.tokenizer": "rejected"},
           "training": {"steps": 3, "dtype": "bfloat16", "losses": [0.69, 0.68, 0.7]}, "adapter": "pass",
           "failures": {}}


def test_verdict_compatible_needs_import_keyword_and_finite_losses():
    assert verdict(TRAINED) == ("compatible", None)
    nan = {**TRAINED, "training": {"steps": 3, "dtype": "bfloat16", "losses": [0.7, float("nan"), 0.6]}}
    assert verdict(nan)[0] == "incompatible" and verdict(nan)[1].stage == "train"
    rejected = {**TRAINED, "probes": {**TRAINED["probes"], "keyword.processing_class": "rejected", "keyword.tokenizer": "rejected"},
                "training": None,
                "failures": {"construct": {"message": "TypeError: x", "raised_by": "trl.trainer.kto_trainer.KTOTrainer.__init__"}}}
    status, failure = verdict(rejected)
    assert (status, failure.stage, failure.raised_by) == ("incompatible", "construct", "trl.trainer.kto_trainer.KTOTrainer.__init__")


def test_verdict_needs_three_bf16_steps_the_adapter_and_no_failed_test():
    short = {**TRAINED, "training": {"steps": 2, "dtype": "bfloat16", "losses": [0.69, 0.68]}}
    fp32 = {**TRAINED, "training": {**TRAINED["training"], "dtype": "float32"}}
    assert [verdict(o)[1].stage for o in (short, fp32)] == ["train", "train"]
    assert verdict({**TRAINED, "adapter": "fail"})[1].stage == "adapter"
    assert verdict({k: v for k, v in TRAINED.items() if k != "adapter"}, adapter_required=False) == ("compatible", None)
    failed = {**TRAINED, "tests": {"passed": 3, "skipped": 0, "failed": [
        {"id": "t::x", "outcome": "failed", "message": "AssertionError: boom", "stage": "format"}]}}
    status, failure = verdict(failed)
    assert (status, failure.stage) == ("incompatible", "format") and "t::x" in failure.message


def test_earliest_stage_wins():
    obs = {"failures": {"train": {"message": "b"}, "import": {"message": "a"}}}
    assert verdict(obs)[1] == Failure("import", "a", None)


def test_round_trip_and_corrupt_files(tmp_path):
    r = CellResult("0.12.2", "4.46.3", "latest", "incompatible", failure=Failure("construct", "TypeError: boom", "x.Y.z"),
                   keyword={"processing_class": "rejected", "tokenizer": "accepted"}, warnings=({"stage": "import", "category": "FutureWarning", "message": "m"},))
    path = tmp_path / "r.json"
    write_json(path, r.serialize())
    assert read_cached(path) == r
    assert r.use_keyword() == "tokenizer"
    path.write_text(path.read_text()[:40])  # truncated
    assert read_cached(path) is None
    path.write_text(json.dumps({"trl": "1", "transformers": "2", "resolution": "latest", "status": "bogus"}))
    assert read_cached(path) is None


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
    md = markdown.document(results, {"profile": "default"})
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\n second line" not in md  # only the first line, and never a raw newline in a row
    assert "\n" not in vocab.md("a\nb|c") and "\\|" in vocab.md("a|b")
    assert vocab.md("\x1b[31m#1 ~x\u202e") == "\\#1 \\~x\ufffd"  # no ANSI, headings, strikes or bidi overrides
    grid = [ln for ln in md.splitlines() if ln.startswith("| **")]
    assert [ln.count(" | ") for ln in grid] == [2, 2, 2]  # TRL column + 2 transformers columns, intact
    # Cell text is Markdown-escaped (renders as processing_class); an unresolvable cell always fails at
    # resolve, so the grid shows its status alone.
    assert "✅ processing\\_class" in md and "| ⛔ unresolvable |" in md
    assert "- **trl 0.12.2**: works with transformers 4.46.3 only; use `processing_class=`; " \
        "`pip install 'trl==0.12.2' 'transformers==4.46.3'`" in md  # the answer first, with its install line
    fails = markdown.grids_document(results, {"profile": "default"}).split("## Failing cells")[1]
    assert "<script>" not in fails
    assert fails.index("0.11.4") < fails.index("1.0.0")  # installs-but-breaks first
    doc = json.loads(dumps_document({"profile": "default"}, results))
    assert doc["schema_version"] == 3 and [c["trl"] for c in doc["cells"]] == ["0.11.4", "0.12.2", "1.0.0"]


def test_pip_settings_reach_uv():
    env = {"PIP_INDEX_URL": "https://idx/simple", "PIP_EXTRA_INDEX_URL": "https://a https://b", "PIP_FIND_LINKS": "/opt/wheels"}
    assert index_args(Settings(), env) == ["--index-url", "https://idx/simple", "--extra-index-url", "https://a",
                                           "--extra-index-url", "https://b", "--index-strategy", "unsafe-best-match",
                                           "--find-links", "/opt/wheels"]
    assert index_args(Settings(), {}) == []
    # matrix.toml's torch index: its torch page only, so no other package can resolve from it
    assert index_args(Settings(torch_index_url="https://download.pytorch.org/whl/cu121/"), {}) == [
        "--find-links", "https://download.pytorch.org/whl/cu121/torch/"]


@pytest.mark.parametrize(("text", "net"), [
    ("error: Failed to fetch: `http://127.0.0.1:9/simple/trl/`\n  Caused by: tcp connect error", True),
    ("× No solution found when resolving dependencies:\n╰─▶ Because trl==1 depends on x", False),
])
def test_network_faults_are_told_apart(text, net):
    assert is_network_error(text) is net
    assert "\n" not in first_error_line(text)


def test_compat_json_from_before_and_after_the_redesign_validates_against_the_committed_schema():
    """Four cells of the default table published before the redesign (schema_version 1, verbatim),
    and the table published now, both against compat/schema with the real jsonschema library and
    through the contract's own loader."""
    import jsonschema

    from compat.harness.documents import load_document, schema

    repo = Path(__file__).parents[2]
    for path in (repo / "tests" / "unit" / "data" / "compat-v1-default-sample.json", repo / "docs" / "compat" / "compat.json"):
        data = json.loads(path.read_text())
        jsonschema.validate(data, schema("compat"))
        cells = load_document(path).cells
        assert len(cells) == len(data["cells"]) and all(c.suite or data["schema_version"] == 1 for c in cells)


def test_compat_md_groups_the_dangerous_pairs_by_cause_without_the_build_machines_paths():
    where = "/work/run/.compat/envs/trl0.11.4-tf4.45.2/lib/python3.11/site-packages/transformers/__init__.py"
    gone = Failure("import", f"ImportError: cannot import name 'X' from 'transformers' ({where})", "trl.core.<module>")
    results = [CellResult("0.11.4", tf, "latest", "incompatible", failure=gone) for tf in ("4.44.2", "4.45.2", "4.46.3")]
    results += [CellResult("0.11.4", "4.47.1", "latest", "compatible", keyword={"tokenizer": "accepted"}),
                CellResult("0.11.4", "4.48.3", "latest", "incompatible", failure=gone),
                CellResult("0.12.2", "4.45.2", "latest", "incompatible",
                           failure=Failure("construct", "TypeError: no processing_class", "transformers.trainer.Trainer.__init__"))]
    meta = {"profile": "default"}
    md, full = markdown.document(results, meta), markdown.grids_document(results, meta)
    assert "- **4 pairs fail** at import (raised by trl.core.&lt;module&gt;): ImportError: cannot import name 'X' from " \
           "'transformers' (transformers/\\_\\_init\\_\\_.py)" in md
    assert "  - trl 0.11.4 with transformers 4.48.3, 4.44.2\u20134.46.3" in md  # adjacent columns read as one range
    assert "- **1 pair fails** at construct" in md
    assert md.index("**4 pairs fail**") < md.index("**1 pair fails**")  # most pairs first
    assert "- **trl 0.11.4**: works with transformers 4.47.1 only; use `tokenizer=`" in md
    assert "/work" not in md and "/work" not in full and "site-packages" not in md + full


def test_a_profile_name_in_a_code_span_shows_no_backslash():
    text = markdown.document([CellResult("1.0.0", "4.46.3", "latest", "compatible")], {"profile": "nightly_full"})
    assert "`nightly_full`" in text and "nightly\\_full" not in text

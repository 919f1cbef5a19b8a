from __future__ import annotations

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from compat.contract import CellResult, Failure
from compat.harness import findings


def ok(trl, tf, kw):
    other = "tokenizer" if kw == "processing_class" else "processing_class"
    return CellResult(trl, tf, "latest", "compatible", keyword={kw: "accepted", other: "rejected"}, import_path="trl", format_mode="text")


RESULTS = [
    ok("0.11.4", "4.45.2", "tokenizer"), ok("0.11.4", "4.46.3", "tokenizer"),
    ok("0.12.0", "4.46.3", "processing_class"), ok("0.12.2", "4.46.3", "processing_class"),
    CellResult("0.12.0", "4.45.2", "latest", "incompatible", failure=Failure("construct", "TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'", "transformers.trainer.Trainer.__init__")),
    ok("0.12.2", "4.57.6", "processing_class"),
]


def lookup(rules, trl, tf):
    for r in rules:
        if SpecifierSet(r["trl"]).contains(trl, prereleases=True) and SpecifierSet(r["transformers"]).contains(tf, prereleases=True):
            return r["value"]
    return None


def test_rules_reproduce_every_measured_point_and_nothing_else():
    f = findings.build(RESULTS)
    rules = f["facts"]["keyword"]
    for r in RESULTS:
        if r.status == "compatible":
            assert lookup(rules, r.trl, r.transformers) == r.use_keyword()
    assert lookup(rules, "0.12.0", "4.45.2") is None  # broken there: not a keyword fact
    assert lookup(rules, "0.12.2", "4.50.0") == "processing_class"  # inside a measured range
    assert lookup(rules, "0.12.1", "4.46.3") is None  # rows differ, so 0.12.1 is not interpolated
    assert lookup(rules, "0.9.0", "4.46.3") is None  # outside: unmeasured
    broken = lookup(f["facts"]["broken"], "0.12.0", "4.45.2")
    assert broken["stage"] == "construct" and broken["raised_by"].startswith("transformers.")
    assert ["0.11.4", "4.45.2"] in f["working"]


def test_same_results_same_bytes_in_any_order(tmp_path):
    a = findings.dumps(findings.build(RESULTS))
    b = findings.dumps(findings.build(list(reversed(RESULTS))))
    assert a == b
    path = tmp_path / "findings.json"
    assert findings.write(RESULTS, path) is True
    assert findings.write(RESULTS[::-1], path) is False


def test_compress_merges_equal_rows():
    pts = {(Version(t), Version(f)): "x" for t in ("1.0", "1.1", "1.2") for f in ("4.0", "4.1")}
    # A rule also lists the pairs inside it a cell measured (any other pair inside is inferred).
    measured = [[t, f] for t in ("1.0", "1.1", "1.2") for f in ("4.0", "4.1")]
    assert [r.serialize() for r in findings.compress(pts)] == [
        {"trl": ">=1.0,<=1.2", "transformers": ">=4.0,<=4.1", "value": "x", "measured": measured}]


def test_a_working_resolution_wins_and_drift_is_never_broken():
    drift = CellResult("0.11.4", "4.45.2", "latest", "incompatible",
                       failure=Failure("import", "ModuleNotFoundError: No module named 'rich'", "trl.trainer.utils.<module>", True))
    aor = CellResult("0.11.4", "4.45.2", "as-of-release", "compatible", keyword={"processing_class": "rejected", "tokenizer": "accepted"},
                     import_path="trl", format_mode="text")
    only_drift = CellResult("0.11.4", "4.46.3", "latest", "incompatible", failure=Failure("import", "x", "datasets.y", True))
    f = findings.build([drift, aor, only_drift])
    assert lookup(f["facts"]["keyword"], "0.11.4", "4.45.2") == "tokenizer"
    assert lookup(f["facts"].get("broken", []), "0.11.4", "4.45.2") is None  # no broken fact at all here
    assert lookup(f["facts"].get("broken", []), "0.11.4", "4.46.3") is None  # drift: reported, not refused
    assert lookup(f["facts"]["drift"], "0.11.4", "4.46.3")["stage"] == "import"

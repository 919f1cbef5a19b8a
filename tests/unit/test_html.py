"""The reports for people and CI: compat.html, junit.xml, the job summary and compat.svg.

The point of most of these: text from a cell is untrusted, and must stay inert
in every output; and the page must hold a full profile (1,755 cells) in under 3 MB
without dropping anything it shows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET

import fullprofile
import pytest

from compat import probes
from compat.contract import CellResult, Drift, Failure
from compat.contract import TestFailure as FailedTest
from compat.contract import Tests as CellTests
from compat.harness.reports import html, junit, plot
from compat.harness.reports import publish as reports

EVIL = "<script>alert(1)</script> | `rm -rf` </script><!-- & <img src=x onerror=alert(2)>\nsecond line\r\n</SCRIPT >"
CASES = [f"case{i}@{t}" for i in range(29) for t in ("chatml", "gemma", "llama2", "zephyr")]  # 116, like the suite


def formatter(legacy_bad: int = 114) -> dict[str, dict[str, str]]:
    legacy = {c: ("error:IndexError" if i < legacy_bad else "pass") for i, c in enumerate(CASES)}
    return {"legacy": legacy, "adapter": dict.fromkeys(CASES, "pass"), "adapter_trl": dict.fromkeys(CASES, "pass")}


def cell(trl: str, tf: str, status: str = "compatible", **kw) -> CellResult:
    defaults = dict(environment={"python": "3.11.7", "torch": "2.13.0+cpu", "trl": trl, "transformers": tf},
                    keyword={"processing_class": "accepted", "tokenizer": "rejected"},
                    keyword_raised_by={"tokenizer": "trl.trainer.kto_trainer.KTOTrainer.__init__"},
                    import_path="trl", formatter=formatter(), seconds=15.2, timings={"resolve": 0.9, "install": 0.7},
                    training={"device": "cpu", "dtype": "bfloat16", "steps": 3, "losses": [0.5, 0.5003, 0.453],
                              "seconds": 0.4, "peak_memory_bytes": 43896832})
    if status == "compatible":
        defaults.update(adapter="pass", adapter_outcome="trained")  # compatible now includes the adapter check
    else:
        defaults.update(training=None, keyword={"processing_class": "untested", "tokenizer": "untested"}, keyword_raised_by={})
    defaults.update(kw)
    return CellResult(trl, tf, "latest", status, **defaults)


def sample() -> list[CellResult]:
    return [
        cell("0.12.2", "4.46.3"),
        cell("0.11.4", "4.46.3", "incompatible", failure=Failure("import", EVIL, "trl.x.<module>"), import_path=None),
        cell("0.12.0", "4.45.2", "unresolvable", failure=Failure("resolve", "No solution found: trl==0.12.0 depends on transformers>=4.46.0", "uv"),
             environment={}, formatter={}, import_path=None),
        cell("0.14.0", "4.57.6", "incompatible", failure=Failure("train", "TypeError: boom", "trl.KTOTrainer._get_train_sampler"),
             training={"losses": [float("nan")], "steps": 1}),
        cell("1.0.0", "4.57.6", "error", failure=Failure("install", "network down", "uv"), formatter={}, import_path=None),
    ]


def data_block(page: str) -> str:
    opener = '<script type="application/json" id="compat-data">'
    start = page.index(opener) + len(opener)
    return page[start:page.index("</script>", start)]


def test_untrusted_text_is_inert_in_the_page():
    page = html.render(sample(), {"profile": EVIL, "platform": "</script><script>alert(3)</script>", "python": "3.11"})
    block = data_block(page)  # ends at the first </script> after the opener: that must be the real end
    data = json.loads(block)
    assert any(c.get("failure", {}).get("message") == EVIL for c in data["cells"])  # kept whole, newlines too
    assert data["meta"]["profile"] == EVIL
    assert not re.search(r"[<>&]", block)  # nothing in the block can start a tag or an entity
    lowered = page.lower()
    assert "<script>alert" not in lowered and "<img" not in lowered and "<!--" not in lowered
    assert lowered.count("</script") == 2  # the data block's and the page script's, nothing injected
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page
    # Self-contained: nothing to fetch. A URL may appear only as text to copy (an install line names PyTorch's
    # CPU index), never where the page would load it.
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|fetch\(""", page)
    outside_data = page.replace(block, "")
    assert "http://" not in outside_data and "https://" not in outside_data


def test_page_csp_admits_exactly_its_own_script_and_style():
    page = html.render(sample(), {})
    digest = lambda s: "sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()  # noqa: E731
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert f"script-src '{digest(script)}'" in csp and f"style-src '{digest(style)}'" in csp
    assert "default-src 'none'" in csp and "unsafe" not in csp
    assert "color-scheme: light dark" in style and "color-scheme: light;" not in style  # dark mode follows the system


def test_page_script_iterates_the_registry_and_never_names_a_probe():
    js = (html._ASSETS / "page.js").read_text(encoding="utf-8")
    assert "for (const p of D.probes)" in js
    for p in probes.PROBES:
        assert f'"{p.key}"' not in js and f"'{p.key}'" not in js, f"page.js hard-codes probe {p.key}"


def test_page_data_survives_nan_losses_and_orders_versions():
    data = html.page_data(sample() + [cell("0.9.6", "4.46.3"), cell("0.12.2", "4.100.0")], {})
    json.dumps(data, allow_nan=False)  # JSON.parse would reject NaN
    (latest,) = data["sections"]
    # Newest row and newest column first (as the PyTorch and Lightning tables order theirs).
    assert latest["trls"] == ["1.0.0", "0.14.0", "0.12.2", "0.12.0", "0.11.4", "0.9.6"]
    assert latest["tfs"][0] == "4.100.0"
    assert len(data["cells"]) == 7 and len(data["cases"]) == len(CASES) and len(data["caseSets"]) == 1
    assert len(data["fmts"]) == 2  # the legacy table and the all-pass one, shared by every cell
    assert data["kinds"] == ["legacy", "adapter", "adapter_trl"]  # legacy first, as the detail lists them
    assert [p["key"] for p in data["probes"]] == [p.key for p in probes.PROBES]
    ok = next(c for c in data["cells"] if c["id"] == "trl0.12.2-tf4.46.3")
    # Environments are interned with the cell's own trl/transformers as null, so cells share them.
    assert data["envs"][ok["env"]] == {"python": "3.11.7", "torch": "2.13.0+cpu", "trl": None, "transformers": None}
    assert len(data["envs"]) == 1
    assert ok["pip"] == "pip install 'trl==0.12.2' 'transformers==4.46.3'"
    pv = dict(zip([p["key"] for p in data["probes"]], ok["pv"], strict=False))  # pv drops trailing nulls
    assert pv["keyword.tokenizer"] == "rejected" and pv["import_path"] == "trl"
    assert "keyword" not in ok and "import_path" not in ok  # the registry values travel once, as pv
    assert (latest["trls"][ok["row"]], latest["tfs"][ok["col"]]) == ("0.12.2", "4.46.3")
    # Row 0.12.2 trains at 4.46.3 and 4.100.0; 4.57.6 between them was not measured on that row.
    assert latest["spans"]["0.12.2"] == [{"lo": "4.46.3", "hi": "4.100.0", "measured": ["4.46.3", "4.100.0"], "gaps": ["4.57.6"]}]
    assert latest["uses"]["0.12.2"] == [{"use": "processing_class", "lo": "4.46.3", "hi": "4.100.0"}]
    assert latest["uses"]["0.14.0"] == []


def test_page_data_keys_a_row_by_the_keyword_each_run_of_columns_takes():
    old = {"processing_class": "rejected", "tokenizer": "accepted"}
    both = {"processing_class": "accepted", "tokenizer": "deprecated"}
    data = html.page_data([cell("0.12.0", "4.45.2", keyword=old), cell("0.12.0", "4.46.3", keyword=both),
                           cell("0.12.0", "4.47.0", keyword=both)], {})
    assert data["sections"][0]["uses"]["0.12.0"] == [{"use": "tokenizer", "lo": "4.45.2", "hi": "4.45.2"},
                                                     {"use": "processing_class", "lo": "4.46.3", "hi": "4.47.0"}]


def test_page_data_explains_drift_and_keeps_what_the_page_shows():
    drift = Failure("import", "ModuleNotFoundError: No module named 'rich'", "trl.trainer.utils.<module>",
                    Drift("undeclared-dependency", "rich", "trl.trainer.utils"))
    r = cell("0.11.4", "4.45.2", "incompatible", failure=drift, adapter="pass", adapter_outcome="refused",
             adapter_detail={"refused": "load_kto raises BrokenPairError"}, declared=">=4.46.0", suite="other",
             tests=CellTests(passed=3, skipped=1, failed=(FailedTest("t::x", "boom\nmore"),)))
    data = html.page_data([r], {"suite": "abc"})
    (c,) = data["cells"]
    assert c["failure"]["drift"] == {"kind": "undeclared-dependency", "package": "rich", "importer": "trl.trainer.utils",
                                     "cause": drift.drift.describe()}
    assert data["details"][c["adapter_detail"]] == {"refused": "load_kto raises BrokenPairError"}
    assert c["adapter_outcome"] == "refused" and c["declared_ok"] is False and c["suite"] == "other"
    assert c["tests"] == {"passed": 3, "skipped": 1, "failed": [{"id": "t::x", "message": "boom\nmore", "outcome": "failed"}]}
    same = html.page_data([cell("0.12.0", "4.46.3", suite="abc")], {"suite": "abc"})["cells"][0]
    assert "suite" not in same  # the run's suite, shown once in the header


def test_page_data_drops_no_measurement():
    """A value the registry files under a probe that does not apply to the cell's trainer, a keyword the
    registry does not name, a probe a newer suite added: all still reach the page (as `probes`)."""
    r = cell("0.12.2", "4.46.3", trainer="dpo", format_mode="text", probes={"new_probe": 3},
             keyword={"processing_class": "accepted", "tokenizer": "rejected", "tok": "accepted"})
    (c,) = html.page_data([r], {})["cells"]
    assert c["probes"] == {"new_probe": 3, "format_mode": "text", "keyword.tok": "accepted"}
    assert c["id"] == "trl0.12.2-tf4.46.3-dpo"


def test_trainers_are_named_and_covered_from_their_specs():
    """Titles and adapter coverage come from compat/trainers: DPO is "DPOTrainer" without an adapter, and a
    trainer no spec declares (an old table) reads as its own name, without an adapter, instead of failing."""
    from compat.harness import findings, specs
    from compat.harness.reports import markdown

    kto, dpo, gone = (cell("0.12.2", "4.46.3", trainer=t) for t in ("kto", "dpo", "orpo"))
    data = html.page_data([kto, dpo, gone], {})
    assert [(s["title"].split(",")[0], s["adapter"]) for s in data["sections"]] == [
        ("KTOTrainer", True), ("DPOTrainer", False), ("orpo", False)]
    assert data["adapterTitles"] == "KTOTrainer" == specs.adapter_titles()
    assert markdown.adapter_text(dpo) == markdown.adapter_text(gone) == "n/a (the adapter covers KTOTrainer)"
    assert markdown.adapter_text(kto).startswith("pass")
    built = findings.build([kto, dpo, gone])
    assert built["generated_from"]["cells"] == 3 and built["generated_from"]["pairs"] == 1  # only the KTO cell counts
    cases = [c.name for c in junit.cases(dpo, ["legacy"])]
    assert not any("formatter" in n for n in cases) and any("formatter" in c.name for c in junit.cases(kto, ["legacy"]))


def test_full_profile_page_stays_under_3_mb():
    results = fullprofile.results()
    assert len(results) == 1755
    statuses = [str(r.status) for r in results]
    assert 1000 < len(results) - statuses.count("unresolvable") < 1200 and 600 < statuses.count("unresolvable") < 700
    start = time.perf_counter()
    page = html.render(results, fullprofile.META)
    elapsed = time.perf_counter() - start
    size = len(page.encode())
    print(f"\nfull profile page: {len(results)} cells, {size:,} bytes, rendered in {elapsed:.2f}s")
    assert size < 3_000_000, f"{size:,} bytes"
    data = json.loads(data_block(page))
    assert len(data["cells"]) == 1755 and len(data["envs"]) < 300 and len(data["warnings"]) < 20


def test_full_profile_page_data_loses_nothing_the_page_shows():
    """The compaction (section-held fields, pv, interned tables) round-trips to the cells' own values."""
    results = fullprofile.results()
    data = html.page_data(results, fullprofile.META)
    keys = [p["key"] for p in data["probes"]]
    kinds = data["kinds"]
    by_id = {c["id"]: (s, c) for s in data["sections"] for c in (data["cells"][i] for i in s["cells"])}
    for r in results[::37]:
        s, c = by_id[r.id]
        assert (s["trls"][c["row"]], s["tfs"][c["col"]], s["resolution"], s["trainer"], s["forced"]) == \
            (str(r.trl), str(r.transformers), r.resolution, r.trainer, r.forced)
        assert c["status"] == r.status and c.get("use") == r.use_keyword()
        pv = c.get("pv", [])
        assert [pv[i] if i < len(pv) else None for i in range(len(keys))] == [r.probe(k) for k in keys]
        env = data["envs"][c["env"]] if "env" in c else {}
        assert {k: str(r.trl if k == "trl" else r.transformers) if v is None else v for k, v in env.items()} == r.environment
        assert [data["warnings"][w] for w in c.get("warnings", [])] == [dict(w) for w in r.warnings]
        assert (data["details"][c["adapter_detail"]] if "adapter_detail" in c else {}) == r.adapter_detail
        for kind, outcomes in r.formatter.items():
            table = data["fmts"][c["fmt"][kinds.index(kind)]]
            cases = [data["cases"][i] for i in data["caseSets"][table["set"]]]
            bad = {data["cases"][i]: o for o, ids in table["bad"].items() for i in ids}
            assert {case: bad.get(case, "pass") for case in cases} == outcomes
        assert c.get("training") == r.training and c.get("timings", {}) == r.timings
        assert c.get("failure", {}).get("message") == (r.failure.message if r.failure else None)


def big_grid() -> list[CellResult]:
    statuses = ("compatible", "compatible", "incompatible", "unresolvable")
    out = []
    for i in range(40):
        for j in range(50):
            status = statuses[(i + j) % 4]
            failure = None if status == "compatible" else Failure("construct", f"TypeError: cell {i},{j}", "x.Y.__init__")
            out.append(cell(f"0.{i}.0", f"4.{j}.0", status, failure=failure))
    return out


def test_page_holds_a_40_by_50_grid():
    results = big_grid()
    start = time.process_time()  # CPU time: what rendering costs, not how busy the machine's other cores are
    page = html.render(results, {"profile": "full"})
    elapsed = time.process_time() - start
    data = json.loads(data_block(page))
    assert len(data["cells"]) == 2000
    assert (len(data["sections"][0]["trls"]), len(data["sections"][0]["tfs"])) == (40, 50)
    assert elapsed < 10, f"rendering 2000 cells took {elapsed:.1f}s"
    assert len(page) < 3_000_000, f"{len(page)} bytes: formatter outcomes are not being interned"


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode("utf-8"))


def case_of(root: ET.Element, suite: str, name: str) -> ET.Element:
    cases = root.findall(f"./testsuite[@name='{suite}']/testcase[@name='{name}']")
    assert len(cases) == 1, f"{suite}: {len(cases)} testcases named {name!r}"
    return cases[0]


def test_junit_keeps_untrusted_text_and_stays_parseable():
    nasty = EVIL + "\x1b[31m\x00 colour codes"
    results = sample() + [cell("0.13.0", "4.46.3", "incompatible", failure=Failure("construct", nasty, "a.B.__init__"))]
    root = parse(junit.document(results))
    failure = case_of(root, "trl0.11.4-tf4.46.3", "import").find("failure")
    assert failure.get("message") == EVIL.splitlines()[0] and failure.get("type") == "import"
    assert failure.text == EVIL.replace("\r\n", "\n") + "\nraised by: trl.x.<module>"  # every character back
    odd = case_of(root, "trl0.13.0-tf4.46.3", "construct").find("failure").text
    assert "\x1b" not in odd and "\x00" not in odd and "colour codes" in odd


def test_junit_outcomes_follow_what_ci_readers_expect():
    root = parse(junit.document(sample()))
    ok = "trl0.12.2-tf4.46.3"
    # The pipeline stages, then one testcase per registry probe (compat/probes.py), then the formatters.
    assert [c.get("name") for c in root.find(f"./testsuite[@name='{ok}']").iter("testcase")] == [
        "resolve", "install", "import", "construct", "format", "training", "adapter",
        *(p.label for p in probes.for_trainer("kto")),
        "formatter[adapter]", "formatter[adapter_trl]"]  # legacy is characterised, not asserted
    assert len(case_of(root, ok, "training")) == 0  # passed
    rejected = case_of(root, ok, "keyword[tokenizer]").find("failure")
    assert rejected.get("type") == "rejected" and "KTOTrainer.__init__" in rejected.get("message")
    unresolvable = "trl0.12.0-tf4.45.2"
    assert case_of(root, unresolvable, "resolve").find("failure").get("type") == "unresolvable"
    assert case_of(root, unresolvable, "training").find("skipped") is not None
    assert case_of(root, "trl1.0.0-tf4.57.6", "install").find("error").get("type") == "harness"
    assert case_of(root, "trl0.14.0-tf4.57.6", "training").find("failure").get("message") == "TypeError: boom"
    for suite in root:
        assert suite.find("./testcase/failure") is not None or suite.find("./testcase/error") is not None \
            or suite.get("name") == ok  # every failing cell is red, never only skipped
    assert int(root.get("tests")) == sum(len(s.findall("testcase")) for s in root)


def test_step_summary_appends_only_under_github_actions(tmp_path):
    results = sample()
    assert reports.append_step_summary(results, {"profile": "default"}, environ={}) is None
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    for _ in range(2):
        reports.append_step_summary(results, {"profile": "default"}, environ={"GITHUB_STEP_SUMMARY": str(target)})
    text = target.read_text()
    assert text.startswith("earlier step\n") and text.count("## KTOTrainer compatibility: TRL x transformers") == 2
    assert "| **0.12.2** |" in text and "<script>" not in text


def test_write_produces_every_report_and_skips_the_svg_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setattr(plot, "available", lambda: False)
    (tmp_path / "compat.svg").write_text("stale")
    reports.write(tmp_path, sample(), {"profile": "default"})
    for name in ("compat.json", "COMPAT.md", "compat.html", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0
    assert not (tmp_path / "compat.svg").exists()
    assert "skipped compat.svg" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp"))


def test_svg_draws_every_cell_deterministically():
    pytest.importorskip("matplotlib")
    # Versions are parsed now (a cell cannot hold "$x$"), so the untrusted text is the run's metadata:
    # math markup in it stays literal.
    results = sample() + [cell("0.13.0", "4.46.3", failure=None)]
    meta = {"profile": "$x$", "generated": "2026-01-01T00:00:00Z"}
    svg = plot.render(results, meta)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert svg == plot.render(results, dict(meta))
    assert plot.label(results[0]) == "✓ processing_class" and plot.label(results[1]) == "✗ import"


def test_the_page_shows_no_path_of_the_machine_that_built_it():
    where = "/work/run/.compat/envs/trl0.12.2-tf4.41.2/lib/python3.11/site-packages/transformers/__init__.py"
    r = CellResult("0.12.2", "4.41.2", "latest", "incompatible",
                   failure=Failure("import", f"ImportError: cannot import name 'X' ({where})", "trl.core.<module>"),
                   tests=CellTests(passed=1, failed=(FailedTest("tests/cell/kto/test_import.py::t", f"failed in {where}"),)),
                   warnings=({"stage": "import", "category": "FutureWarning", "message": f"{where}:12: old"},))
    page = html.render([r], {})
    assert "/work/" not in page and "site-packages" not in page
    assert "transformers/__init__.py" in page  # the module is still named

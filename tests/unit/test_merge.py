"""`compat merge`: sharded runs merged give the unsharded report; conflicts name the cell."""

from __future__ import annotations

import json
from pathlib import Path

import fakeproject
import pytest

from compat.contract import CellResult, Failure
from compat.harness import merge, regressions

MATRIX = fakeproject.matrix((["0.12.*", "1.0.0"], ["4.46.3", "5.0.0"]), (["0.13.0"], ["5.0.0"]), cell_timeout=60)
VOLATILE = {"generated", "rendered", "measured", "cold_seconds", "seconds", "timings", "peak_rss_bytes", "log"}


def strip(data: object) -> object:
    """Drop timing and memory fields and the generated/rendered timestamps, at any depth."""
    if isinstance(data, dict):
        return {k: strip(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [strip(v) for v in data]
    return data


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return fakeproject.make(tmp_path, MATRIX, ["0.12.0", "0.12.2", "0.13.0", "1.0.0"], ["4.46.3", "5.0.0"])


def test_two_shards_merged_equal_the_unsharded_run(project):
    for name, extra in (("all", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        proc = fakeproject.compat(project, "matrix", "--fresh", "-j", "2", "--out", str(project / name), *extra)
        assert proc.returncode == 0, proc.stderr
    shard_cells = [len(json.loads((project / s / "compat.json").read_text())["cells"]) for s in ("s1", "s2")]
    assert shard_cells == [3, 2]  # really split
    proc = fakeproject.compat(project, "merge", str(project / "s2"), str(project / "s1"), "--out", str(project / "merged"),
                              config=False)
    assert proc.returncode == 0, proc.stderr
    whole = json.loads((project / "all" / "compat.json").read_text())
    merged = json.loads((project / "merged" / "compat.json").read_text())
    assert strip(merged) == strip(whole)
    md = [(project / d / "COMPAT.md").read_text().splitlines() for d in ("merged", "all")]
    # The header line says when the cells were measured ("Measured <generated> from profile ...").
    assert [ln for ln in md[0] if not ln.startswith("Measured")] == [ln for ln in md[1] if not ln.startswith("Measured")]
    assert sorted(p.name for p in (project / "merged" / "cells").glob("*.json")) == \
        sorted(p.name for p in (project / "all" / "cells").glob("*.json"))
    assert all((project / "merged" / c["log"]).is_file() for c in merged["cells"])


def _cell(status: str = "compatible", seconds: float = 1.0) -> CellResult:
    return CellResult("0.12.2", "4.46.3", "latest", status, seconds=seconds)


def test_identical_duplicates_fold_and_disagreeing_ones_become_flaky_in_any_order(tmp_path):
    same = [merge.Source(tmp_path / "a", (_cell(),), {}), merge.Source(tmp_path / "b", (_cell(seconds=9.0),), {})]
    assert len(merge.merge_cells(same)) == 1  # timings differ: the same verdict
    assert merge.merge_cells(same) == merge.merge_cells(same[::-1])  # the order never shows
    clash = [same[0], merge.Source(tmp_path / "c", (_cell("incompatible"),), {})]
    [flaky] = merge.merge_cells(clash)
    assert flaky.status == "flaky" and sorted(o["status"] for o in flaky.flaky) == ["compatible", "incompatible"]
    assert merge.merge_cells(clash[::-1]) == [flaky]
    # A third duplicate agreeing with one side adds no outcome; an error adds none either.
    more = [*clash, merge.Source(tmp_path / "d", (_cell(seconds=3.0),), {}),
            merge.Source(tmp_path / "e", (_cell("error"),), {})]
    assert [len(c.flaky) for c in merge.merge_cells(more)] == [2]


def test_base_cells_are_replaced_by_shards_and_kept_otherwise(tmp_path):
    old = CellResult("0.11.4", "4.46.3", "latest", "incompatible")
    base = merge.Source(tmp_path / "reports", (_cell(), old), {})
    rerun = merge.Source(tmp_path / "s1", (_cell("incompatible"),), {})
    merged = {c.id: c.status for c in merge.merge_cells([rerun], base)}
    assert merged == {"trl0.12.2-tf4.46.3": "incompatible", "trl0.11.4-tf4.46.3": "incompatible"}


def test_meta_agreeing_kept_disagreeing_listed(tmp_path):
    a = merge.Source(tmp_path, (), {"suite": "s1", "torch": "2.13.0", "platform": "p1", "generated": "x"})
    b = merge.Source(tmp_path, (), {"suite": "s2", "torch": "2.13.0", "platform": "p2"})
    # `generated` (when the cells were measured) is kept: the newest of the inputs.
    assert merge.merge_meta([a, b]) == {"suite": "s1, s2", "torch": "2.13.0", "platform": "p1; p2", "generated": "x"}


def test_meta_merges_as_sets_and_a_source_that_only_erred_adds_nothing(tmp_path):
    hw = "cpu (x86_64, 4 cores, BF16 as CPU autocast)"
    table = merge.Source(tmp_path, (_cell(),), {"platform": "Linux-A", "hardware": hw, "profile": "default, dpo"})
    shard = merge.Source(tmp_path, (_cell(),), {"platform": "Linux-A", "hardware": hw})
    once = merge.merge_meta([table, merge.Source(tmp_path, (_cell(),), {"platform": "Linux-B", "hardware": hw})])
    twice = merge.merge_meta([merge.Source(tmp_path, (_cell(),), once), shard])
    assert twice["platform"] == "Linux-A; Linux-B" and twice["hardware"] == hw  # never "A; A; B", never 4 cores twice
    erred = merge.Source(tmp_path, (_cell("error"),), {"platform": "Linux-C", "generated": "2099-01-01T00:00:00Z"})
    assert merge.merge_meta([table, erred]) == merge.merge_meta([table])
    assert merge.label_union("profile", "default, dpo", "default dpo full") == "default, dpo, full"


def test_each_cell_keeps_when_it_was_measured_and_the_table_date_is_the_newest(tmp_path):
    old = CellResult("0.11.4", "4.46.3", "latest", "incompatible")
    base = merge.Source(tmp_path / "docs", (_cell(), old), {"generated": "2026-01-01T00:00:00Z",
                                                           "measured": {old.id: "2025-12-01T00:00:00Z"}})
    rerun = merge.Source(tmp_path / "s1", (_cell("incompatible"), CellResult("1.0.0", "5.0.0", "latest", "error")),
                         {"generated": "2026-02-02T00:00:00Z"})
    cells = merge.merge_cells([rerun], base)
    dates = merge.measured_dates([rerun], base, cells)
    # The re-measured cell is dated by its run, the kept ones keep theirs, the error has none.
    assert dates == {_cell().id: "2026-02-02T00:00:00Z", old.id: "2025-12-01T00:00:00Z"}
    assert merge.merge_meta([rerun, base], dates)["generated"] == "2026-02-02T00:00:00Z"
    only_errors = merge.Source(tmp_path / "s2", (CellResult("0.12.2", "4.46.3", "latest", "error"),),
                               {"generated": "2026-03-03T00:00:00Z"})
    cells = merge.merge_cells([only_errors], base)
    dates = merge.measured_dates([only_errors], base, cells)
    assert merge.merge_meta([only_errors, base], dates)["generated"] == "2026-01-01T00:00:00Z"


def test_merge_cli_disagreeing_shards_publish_a_flaky_cell(project, tmp_path):
    for name, status in (("x", "compatible"), ("y", "incompatible")):
        d = tmp_path / name
        d.mkdir()
        (d / "compat.json").write_text(json.dumps({"schema_version": 1, "cells": [_cell(status).serialize()]}))
    proc = fakeproject.compat(project, "merge", str(tmp_path / "x"), str(tmp_path / "y"), "--out", str(tmp_path / "m"),
                              config=False)
    assert proc.returncode == 0, proc.stderr
    [cell] = json.loads((tmp_path / "m" / "compat.json").read_text())["cells"]
    assert cell["status"] == "flaky" and {o["status"] for o in cell["flaky"]} == {"compatible", "incompatible"}


def test_a_rerun_merged_over_its_base_relabels_the_suite_from_the_cells(project, tmp_path):
    from dataclasses import replace

    for name, suite, cells in (("base", "old", [_cell(), replace(_cell(), transformers="5.0.0")]),
                               ("rerun", "new", [_cell()])):
        d = tmp_path / name
        d.mkdir()
        data = {"schema_version": 1, "suite": suite, "cells": [replace(c, suite=suite).serialize() for c in cells]}
        (d / "compat.json").write_text(json.dumps(data))
    out = tmp_path / "m"
    merged = fakeproject.compat(project, "merge", str(tmp_path / "rerun"), "--base", str(tmp_path / "base"), "--out",
                                str(out), config=False)
    assert merged.returncode == 0, merged.stderr
    assert json.loads((out / "compat.json").read_text())["suite"] == "new, old"  # one base cell is still on old
    (tmp_path / "rerun2").mkdir()
    (tmp_path / "rerun2" / "compat.json").write_text(json.dumps(
        {"schema_version": 1, "suite": "new", "cells": [replace(_cell(), transformers="5.0.0", suite="new").serialize()]}))
    again = fakeproject.compat(project, "merge", str(tmp_path / "rerun2"), "--base", str(out), "--out",
                               str(tmp_path / "m2"), config=False)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "m2" / "compat.json").read_text())["suite"] == "new"


@pytest.mark.needs("matplotlib")
def test_the_same_cells_in_any_order_and_any_shards_give_the_same_bytes(project, tmp_path):
    from dataclasses import replace

    from compat.harness.documents import dumps_document as dumps
    from compat.harness.documents import load_document

    published = load_document(Path(__file__).parents[2] / "docs" / "compat" / "compat.json")
    cells = [c for c in published.cells if str(c.transformers) == "5.25.0"][:21]
    # One cell measured twice, disagreeing (as a drift twin's shard and its own may): flaky either way.
    other = replace(cells[0], status="incompatible" if cells[0].status == "compatible" else "compatible", failure=None)
    meta = {"generated": "2026-12-05T04:30:00Z", "platform": "Linux-A", "hardware": "cpu (x86_64, 4 cores)"}
    # The duplicate sits in another shard than its twin: one document holds each cell once (documents.py).
    layouts = {"a": [cells[:10], cells[10:] + [other]], "b": [cells[20:10:-1] + [cells[10], other], cells[9::-1]]}
    for name, shards in layouts.items():
        dirs = []
        for i, shard in enumerate(shards if name == "a" else shards[::-1]):
            d = tmp_path / name / f"shard-{i}"
            (d / "logs").mkdir(parents=True)
            (d / "compat.json").write_text(dumps(meta, shard))
            (d / "locks").mkdir()
            for c in shard:
                (d / "logs" / f"{c.id}.log").write_text(f"log of {c.id}\n")
                if c.lock:  # a shard travels with the locks its cells name
                    lock = Path(__file__).parents[2] / "docs" / "compat" / "locks" / f"{c.lock}.txt"
                    (d / "locks" / lock.name).write_bytes(lock.read_bytes())
            dirs.append(str(d))
        proc = fakeproject.compat(project, "merge", *dirs, "--out", str(tmp_path / name / "out"), config=False)
        assert proc.returncode == 0, proc.stderr
    out = {name: {p.relative_to(tmp_path / name / "out").as_posix(): p.read_bytes()
                  for p in sorted((tmp_path / name / "out").rglob("*")) if p.is_file() and p.name != ".compat.lock"}
           for name in layouts}  # .compat.lock: the harness's lock, holding its pid; never published
    assert out["a"] == out["b"] and len(out["a"]["compat.svg"]) > 10_000
    assert json.loads(out["a"]["compat.json"])["cells"][0]["status"] == "flaky"


def test_versions_equal_under_pep_440_are_one_cell(tmp_path):
    short = CellResult("1.0", "4.46.3", "latest", "compatible")
    long = CellResult("1.0.0", "4.46.3", "latest", "incompatible", failure=Failure("train", "nan loss"))
    assert len(merge.merge_cells([merge.Source(tmp_path / "a", (short,), {}),
                                  merge.Source(tmp_path / "b", (CellResult("1.0.0", "4.46.3", "latest", "compatible"),), {})])) == 1
    [folded] = merge.merge_cells([merge.Source(tmp_path / "a", (short,), {}), merge.Source(tmp_path / "b", (long,), {})])
    assert folded.status == "flaky"  # a disagreement is flaky with both outcomes, never two cells
    found = regressions.find([short], [long])  # one report spells 1.0, the next 1.0.0: still a regression
    assert [(str(s.before.trl), str(s.after.trl)) for s in found] == [("1.0", "1.0.0")]


def test_a_symlinked_log_is_not_followed_into_the_merged_report(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private key")
    shard = tmp_path / "shard"
    (shard / "logs").mkdir(parents=True)
    cell = CellResult("0.12.2", "4.46.3", "latest", "compatible", log="logs/trl0.12.2-tf4.46.3.log")
    (shard / "logs" / f"{cell.id}.log").symlink_to(secret)
    out = tmp_path / "out"
    from compat.harness import logs

    kept = logs.publish([shard], out, [cell])
    assert not (out / "logs").exists() or not any((out / "logs").iterdir())
    assert [c.log for c in kept] == [None]  # no file published, so no link

"""`compat merge`: sharded runs merged give the unsharded report; conflicts name the cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compat.harness import merge, regressions
from compat.harness.config import ConfigError
from compat.contract import CellResult, Failure

import fakeproject

MATRIX = fakeproject.matrix((["0.12.*", "1.0.0"], ["4.46.3", "5.0.0"]), (["0.13.0"], ["5.0.0"]), cell_timeout=60)
VOLATILE = {"generated", "rendered", "seconds", "timings", "peak_rss_bytes"}


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


def test_identical_duplicates_merge_and_conflicts_name_the_cell(tmp_path):
    same = [merge.Source(tmp_path / "a", (_cell(),), {}), merge.Source(tmp_path / "b", (_cell(seconds=9.0),), {})]
    assert len(merge.merge_cells(same)) == 1  # timings differ: not a conflict
    clash = [same[0], merge.Source(tmp_path / "c", (_cell("incompatible"),), {})]
    with pytest.raises(ConfigError, match=r"conflicting results for cell trl0\.12\.2-tf4\.46\.3: .*a and .*c differ \(status"):
        merge.merge_cells(clash)


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


def test_merge_cli_conflict_exits_2_with_one_line(project, tmp_path):
    for name, status in (("x", "compatible"), ("y", "incompatible")):
        d = tmp_path / name
        d.mkdir()
        (d / "compat.json").write_text(json.dumps({"schema_version": 1, "cells": [_cell(status).serialize()]}))
    proc = fakeproject.compat(project, "merge", str(tmp_path / "x"), str(tmp_path / "y"), "--out", str(tmp_path / "m"),
                              config=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "trl0.12.2-tf4.46.3" in proc.stderr


def test_versions_equal_under_pep_440_are_one_cell(tmp_path):
    short = CellResult("1.0", "4.46.3", "latest", "compatible")
    long = CellResult("1.0.0", "4.46.3", "latest", "incompatible", failure=Failure("train", "nan loss"))
    assert len(merge.merge_cells([merge.Source(tmp_path / "a", (short,), {}),
                                  merge.Source(tmp_path / "b", (CellResult("1.0.0", "4.46.3", "latest", "compatible"),), {})])) == 1
    with pytest.raises(ConfigError, match="conflicting results for cell trl1.0(.0)?-tf4.46.3"):
        merge.merge_cells([merge.Source(tmp_path / "a", (short,), {}), merge.Source(tmp_path / "b", (long,), {})])
    found = regressions.find([short], [long])  # one report spells 1.0, the next 1.0.0: still a regression
    assert [(str(g.old.trl), str(g.new.trl)) for g in found] == [("1.0", "1.0.0")]


def test_a_symlinked_log_is_not_followed_into_the_merged_report(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private key")
    shard = tmp_path / "shard"
    (shard / "logs").mkdir(parents=True)
    cell = CellResult("0.12.2", "4.46.3", "latest", "compatible", log="logs/trl0.12.2-tf4.46.3.log")
    (shard / "logs" / f"{cell.id}.log").symlink_to(secret)
    out = tmp_path / "out"
    merge.copy_logs([merge.Source(shard, (cell,), {})], out, [cell])
    assert not (out / "logs" / f"{cell.id}.log").exists()

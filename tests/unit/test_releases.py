"""`compat releases` (new index releases vs stored results) and `compat regressions`."""

from __future__ import annotations

import json
from pathlib import Path

import fakeproject
import pytest

from compat.contract import CellResult, Failure
from compat.harness import regressions

MATRIX = fakeproject.matrix((["0.12.*", "latest"], ["4.46.*", "latest"]))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    # The index has moved on since reports/ was written: trl 1.1.0 and transformers 5.1.0 are new.
    return fakeproject.make(tmp_path, MATRIX, ["0.12.0", "0.12.2", "1.0.0", "1.1.0", "1.2.0rc1"],
                            ["4.46.2", "4.46.3", "5.0.0", "5.1.0"])


def stored(project: Path, *cells: tuple[str, str, str]) -> Path:
    out = project / "reports"
    out.mkdir(exist_ok=True)
    data = [CellResult(t, f, "latest", s).serialize() for t, f, s in cells]
    (out / "compat.json").write_text(json.dumps({"schema_version": 1, "cells": data}))
    return out


def test_lists_versions_and_cells_the_stored_results_lack(project):
    reports = stored(project, ("0.12.2", "4.46.3", "compatible"), ("0.12.2", "5.0.0", "unresolvable"),
                     ("1.0.0", "4.46.3", "unresolvable"), ("1.0.0", "5.0.0", "compatible"))
    proc = fakeproject.compat(project, "releases", "--results", str(reports))
    assert proc.returncode == 0, proc.stderr
    assert "new trl: 1.1.0\nnew transformers: 5.1.0" in proc.stdout
    flags = fakeproject.compat(project, "releases", "--results", str(reports), "--only-flags")
    assert flags.returncode == 0
    assert flags.stdout.splitlines() == ["trl==0.12.2,transformers==5.1.0", "trl==1.1.0,transformers==4.46.3",
                                         "trl==1.1.0,transformers==5.1.0"]


def test_error_and_flaky_cells_are_not_covered_and_nothing_new_prints_nothing(project):
    reports = stored(project, ("0.12.2", "4.46.3", "compatible"), ("0.12.2", "5.1.0", "error"),
                     ("1.1.0", "4.46.3", "flaky"), ("1.1.0", "5.1.0", "compatible"))
    flags = fakeproject.compat(project, "releases", "--results", str(reports), "--only-flags")
    assert flags.stdout.splitlines() == ["trl==0.12.2,transformers==5.1.0", "trl==1.1.0,transformers==4.46.3"]
    stored(project, ("0.12.2", "4.46.3", "compatible"), ("0.12.2", "5.1.0", "unresolvable"),
           ("1.1.0", "4.46.3", "unresolvable"), ("1.1.0", "5.1.0", "compatible"))
    none = fakeproject.compat(project, "releases", "--results", str(reports), "--only-flags")
    assert (none.returncode, none.stdout) == (0, "")


def test_first_run_without_stored_results_lists_every_cell(project):
    proc = fakeproject.compat(project, "releases", "--results", str(project / "nothing-yet"), "--only-flags")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 4


def test_a_full_rerun_lists_pairs_compatible_before_and_broken_now(tmp_path):
    old = [CellResult("0.12.2", "4.46.3", "latest", "compatible", keyword={"processing_class": "accepted", "tokenizer": "rejected"}),
           CellResult("1.0.0", "5.0.0", "latest", "compatible"), CellResult("1.1.0", "5.0.0", "latest", "compatible"),
           CellResult("0.11.4", "4.46.3", "latest", "incompatible")]
    new = [CellResult("0.12.2", "4.46.3", "latest", "incompatible",
                      failure=Failure("import", "ImportError: cannot import name 'x|y' from `pyarrow`", "datasets.arrow")),
           CellResult("1.0.0", "5.0.0", "latest", "error", failure=Failure("resolve", "Failed to fetch")),
           CellResult("1.1.0", "5.0.0", "latest", "compatible"), CellResult("0.11.4", "4.46.3", "latest", "incompatible")]
    found = regressions.find(old, new)
    assert [(s.axis, s.after.id, s.regression) for s in found] == [("rerun", "trl0.12.2-tf4.46.3", True)]  # an `error` is not one
    md = regressions.markdown(found)
    assert "| kto | trl 0.12.2 + transformers 4.46.3 | latest | the last run | import | datasets.arrow |" in md
    assert "x\\|y" in md and "\\`pyarrow\\`" in md  # cell text escaped
    assert regressions.markdown([]) == ""
    for name, cells in (("old", old), ("new", new)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"schema_version": 1, "cells": [c.serialize() for c in cells]}))
    proc = fakeproject.compat(tmp_path, "regressions", str(tmp_path / "old.json"), str(tmp_path / "new.json"), config=False)
    assert proc.returncode == 0 and proc.stdout == md


def test_cells_of_a_grid_with_its_own_resolution_are_listed_with_it(project):
    # --only takes ",resolution=MODE" now, so a grid's own mode is reachable and its cells are listed.
    (project / "matrix.toml").write_text(MATRIX + '\n[[profiles.default.grid]]\ntrl = ["0.12.0"]\n'
                                         'transformers = ["4.46.3"]\nresolution = "as-of-release"\n')
    reports = stored(project, ("0.12.2", "4.46.3", "compatible"), ("0.12.2", "5.1.0", "unresolvable"),
                     ("1.1.0", "4.46.3", "unresolvable"), ("1.1.0", "5.1.0", "compatible"))
    proc = fakeproject.compat(project, "releases", "--results", str(reports), "--only-flags")
    assert (proc.returncode, proc.stdout) == (0, "trl==0.12.0,transformers==4.46.3,resolution=as-of-release\n")
    listed = fakeproject.compat(project, "list", "--only", proc.stdout.strip())
    assert (listed.returncode, listed.stdout) == (0, "trl0.12.0-tf4.46.3-as-of-release\n"), listed.stderr


def test_shards_are_sized_from_the_cold_cell_time_of_ci_shards_not_warm_timings():
    from compat.harness.releases import DEFAULT_SECONDS, cold_seconds, shard_plan

    # Shard 1 ran two cold cells (20 s, 0.2 s unresolvable), shard 2 one (19.8 s) and one harness error.
    shards = [[CellResult("0.12.2", "4.46.3", "latest", "compatible", seconds=20.0),
               CellResult("0.12.0", "4.45.2", "latest", "unresolvable", seconds=0.2)],
              [CellResult("1.0.0", "5.0.0", "latest", "compatible", seconds=19.8),
               CellResult("1.1.0", "5.0.0", "latest", "error", seconds=300.0)]]
    assert cold_seconds(shards) == 19.8  # the worst shard's mean; the error measured nothing
    assert cold_seconds([[CellResult("1.1.0", "5.0.0", "latest", "error", seconds=3.0)]]) is None
    cells = [f"trl==1.{i}.0,transformers==4.46.3" for i in range(45)]  # a new transformers minor: one column
    found = shard_plan(cells, {"cold_seconds": 13.3}, minutes=2.0, max_shards=20)  # 9 whole cells in 2 minutes
    assert found.seconds_per_cell == 13.3 and found.shards == 5
    assert shard_plan(cells, {"cold_seconds": 13.3}, minutes=20.0, max_shards=20).shards == 1
    assert shard_plan(cells, {"cold_seconds": 13.3}, minutes=0.1, max_shards=20).shards == 20  # capped
    assert shard_plan([], {"cold_seconds": 13.3}, minutes=20.0, max_shards=20).shards == 0
    # No cold measurement yet (the published table's own times are warm: 4.6 s a cell): the default.
    assert shard_plan(cells, {}, minutes=2.0, max_shards=20).seconds_per_cell == DEFAULT_SECONDS
    assert "shards=[1, 2, 3, 4, 5]" in found.github_output()

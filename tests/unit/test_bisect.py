"""`compat bisect`: O(log n) cells, the same boundary as a linear scan, unmeasurable cells skipped."""

from __future__ import annotations

import json
import math
import random
from itertools import pairwise
from pathlib import Path

import fakeproject
import pytest
from packaging.version import Version

from compat.contract import CellResult
from compat.harness import bisect

TRL = [f"0.{minor}.{patch}" for minor in range(11, 19) for patch in (0, 1)]  # 16 releases
MATRIX = fakeproject.matrix((["latest"], ["4.46.3"]))


def fake_measure(values: dict[Version, str | None], calls: list[Version]):
    def measure(v: Version) -> bisect.Point:
        calls.append(v)
        value = values[v]
        r = CellResult(str(v), "4.46.3", "latest", "compatible" if value else "incompatible",
                       keyword={"processing_class": "accepted", "tokenizer": value or "untested"})
        return bisect.Point(v, bisect.probe_value(r, "keyword.tokenizer"), r)
    return measure


@pytest.mark.parametrize("seed", range(60))
def test_matches_linear_scan_in_log_cells_with_unmeasurable_blocks_at_the_ends(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 64)
    versions = [Version(f"0.{i}.0") for i in range(n)]
    cut, low, high = rng.randint(0, n), rng.randint(0, n // 3), rng.randint(0, n // 4)
    values: dict[Version, str | None] = {
        v: None if i < low or i >= n - high else ("accepted" if i < cut else "rejected") for i, v in enumerate(versions)}
    calls: list[Version] = []
    outcome = bisect.search(versions, fake_measure(values, calls))
    _, first = bisect.scan(versions, fake_measure(values, []))
    if values[versions[0]] is None and values[versions[-1]] is None:
        assert outcome.kind == "unmeasurable"
    elif first is None:
        assert outcome.kind == "no-change"
    else:
        assert outcome.kind == "found" and outcome.after.version == first.version and not outcome.between
    log = math.ceil(math.log2(n)) if n > 1 else 0
    assert len(calls) == len(set(calls)) <= 2 + 3 * log  # endpoints, two edge searches, the boundary search


def test_skips_unmeasurable_midpoints_and_reports_the_block_when_nothing_between_is_measurable():
    versions = [Version(f"1.{i}.0") for i in range(8)]
    values = dict(zip(versions, ["accepted", "accepted", None, None, None, "rejected", "rejected", "rejected"], strict=True))
    outcome = bisect.search(versions, fake_measure(values, []))
    assert outcome.kind == "found" and (outcome.before.version, outcome.after.version) == (Version("1.1.0"), Version("1.5.0"))
    assert outcome.between == (Version("1.2.0"), Version("1.3.0"), Version("1.4.0"))
    assert {p.version for p in outcome.skipped} == {Version("1.2.0"), Version("1.3.0"), Version("1.4.0")}


def test_good_bad_sets_and_endpoint_cases():
    versions = [Version(f"2.{i}.0") for i in range(6)]
    values = dict(zip(versions, ["accepted", "deprecated", "deprecated", "rejected", "rejected", "rejected"], strict=True))
    plain = bisect.search(versions, fake_measure(values, []))
    assert plain.after.version == Version("2.1.0")  # default: first value different from the low end
    side = bisect.Side(good=frozenset({"accepted", "deprecated"}), bad=frozenset({"rejected"}))
    assert bisect.search(versions, fake_measure(values, []), side).after.version == Version("2.3.0")
    same = dict.fromkeys(versions, "rejected")
    assert bisect.search(versions, fake_measure(same, [])).kind == "no-change"
    assert bisect.search(versions, fake_measure(same, []), bisect.Side(bad=frozenset({"rejected"}))).kind == "already-changed"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return fakeproject.make(tmp_path, MATRIX, TRL, ["4.46.3", "5.0.0"])


def test_cli_bisect_runs_at_most_6_of_16_cells_and_agrees_with_a_linear_scan(project):
    env = {"FAKE_BOUNDARY": "0.14.1"}
    proc = fakeproject.compat(project, "bisect", "--axis", "trl", "--fixed", "transformers==4.46.3",
                              "--probe", "keyword.tokenizer", "--out", str(project / "b"), **env)
    assert proc.returncode == 0, proc.stderr
    started = proc.stderr.count("compat: start ")
    assert started <= 6 and len(list((project / "b" / "cells").glob("*.json"))) == started
    assert "boundary: trl 0.14.1 is the first release where keyword.tokenizer is 'rejected' " \
           "(was 'accepted' up to trl 0.14.0)" in proc.stdout
    assert "before: trl0.14.0-tf4.46.3: keyword.tokenizer=accepted; status=compatible" in proc.stdout
    assert "after:  trl0.14.1-tf4.46.3: keyword.tokenizer=rejected; status=compatible" in proc.stdout
    # The linear scan: every release through the ordinary matrix, first change read off compat.json.
    only = [a for v in TRL for a in ("--only", f"trl=={v},transformers==4.46.3")]
    scan = fakeproject.compat(project, "matrix", "--fresh", "-j", "2", "--out", str(project / "scan"), *only, **env)
    assert scan.returncode == 0, scan.stderr
    cells = sorted(json.loads((project / "scan" / "compat.json").read_text())["cells"], key=lambda c: Version(c["trl"]))
    linear = next(b["trl"] for a, b in pairwise(cells) if b["keyword"]["tokenizer"] != a["keyword"]["tokenizer"])
    assert linear == "0.14.1" and "trl 0.14.1 is the first release" in proc.stdout


def test_cli_bisect_skips_import_failures_and_reuses_the_result_cache(project):
    env = {"FAKE_BOUNDARY": "0.16.0", "FAKE_UNTESTED_BELOW": "0.13.0"}
    args = ["bisect", "--axis", "trl", "--fixed", "transformers==4.46.3", "--probe", "keyword.tokenizer",
            "--out", str(project / "b")]
    proc = fakeproject.compat(project, *args, **env)
    assert proc.returncode == 0, proc.stderr
    assert "boundary: trl 0.16.0 is the first release where keyword.tokenizer is 'rejected'" in proc.stdout
    assert "skipped (probe unmeasurable" in proc.stdout
    assert "trl0.11.0-tf4.46.3: keyword.tokenizer=unmeasured; status=incompatible; import: ModuleNotFoundError" in proc.stdout
    again = fakeproject.compat(project, *args, **env)
    assert again.stderr.count("compat: start ") == 0 and again.stdout.splitlines()[:3] == proc.stdout.splitlines()[:3]


def test_cli_bisect_bad_input_is_one_clear_line(project):
    proc = fakeproject.compat(project, "bisect", "--axis", "trl", "--fixed", "trl==0.12.0", "--probe", "status")
    assert proc.returncode == 2 and "expected transformers==VERSION" in proc.stderr
    proc = fakeproject.compat(project, "bisect", "--axis", "trl", "--fixed", "transformers==4.46.3", "--probe", "status",
                              "--range", ">=9")
    assert proc.returncode == 2 and "need at least 2" in proc.stderr


def test_changes_lists_every_transition_of_a_non_monotonic_probe():
    versions = [Version(v) for v in ("0.11.0", "0.12.0", "0.12.1", "0.13.0", "0.14.0")]
    values = dict(zip(versions, [None, "rejected", "accepted", "deprecated", "rejected"], strict=True))
    points, first = bisect.scan(versions, fake_measure(values, []))
    assert first.version == Version("0.12.1")
    assert [(str(a.version), str(b.version)) for a, b in bisect.changes(points)] == [
        ("0.12.0", "0.12.1"), ("0.12.1", "0.13.0"), ("0.13.0", "0.14.0")]


def test_cli_bisect_into_a_report_directory_keeps_every_cell_and_its_label(project):
    only = [a for v in ("0.11.0", "0.12.0", "0.13.0") for a in ("--only", f"trl=={v},transformers=={'5.0.0'}")]
    first = fakeproject.compat(project, "matrix", "--out", str(project / "r"), *only)
    assert first.returncode == 0, first.stderr
    before = json.loads((project / "r" / "compat.json").read_text())
    assert len(before["cells"]) == 3
    proc = fakeproject.compat(project, "bisect", "--axis", "trl", "--fixed", "transformers==4.46.3",
                              "--probe", "keyword.tokenizer", "--out", str(project / "r"), FAKE_BOUNDARY="0.14.1")
    assert proc.returncode == 0, proc.stderr
    after = json.loads((project / "r" / "compat.json").read_text())
    ids = {f"trl{c['trl']}-tf{c['transformers']}" for c in after["cells"]}
    assert {f"trl{c['trl']}-tf{c['transformers']}" for c in before["cells"]} <= ids
    assert len(ids) == 3 + proc.stderr.count("compat: start ")
    assert after["profile"] == before["profile"]  # the report keeps its own label
    assert {p.stem for p in (project / "r" / "cells").glob("*.json")} == ids  # cells/ mirrors compat.json

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from compat.harness import config as cfg
from compat.harness import plan
from compat.harness.index import parse_listing


def sel(raw, pick="latest"):
    return cfg.Selector.parse(raw, "t", pick)


@pytest.mark.parametrize(
    ("raw", "pick", "want"),
    [
        ("0.12.0", "latest", ["0.12.0"]),
        ("0.12.*", "latest", ["0.12.2"]),  # 0.12.1 is yanked
        ("latest", "latest", ["1.1.0"]),  # pre-releases are not picked
        ("<1", "latest", ["0.13.0"]),
        (">=0.11", "latest-per-minor", ["0.11.4", "0.12.2", "0.13.0", "1.0.0", "1.1.0"]),
        (">=0.11,<0.12", "all", ["0.11.0", "0.11.4"]),
        ("0.12.*", "earliest", ["0.12.0"]),
    ],
)
def test_select(lister, raw, pick, want):
    assert [str(v) for v in plan.select(sel(raw, pick), lister("trl"), "w")] == want


def test_exact_yanked_version_is_allowed_but_missing_one_is_named(lister):
    assert plan.select(sel("0.12.1"), lister("trl"), "w") == [Version("0.12.1")]
    with pytest.raises(cfg.ConfigError, match=r"w: version 9.9.9 does not exist on the package index"):
        plan.select(sel("9.9.9"), lister("trl"), "w")


def test_expand_is_union_of_grids_sorted_and_deduplicated(lister):
    grid = cfg.Grid((sel("0.12.*"), sel("0.13.0")), (sel("4.46.3"),))
    again = cfg.Grid((sel("0.13.0"),), (sel("4.46.3"), sel("5.0.0")))
    cells = plan.expand(cfg.Profile("p", "", (grid, again)), lister, ["latest"])
    assert [c.id for c in cells] == ["trl0.12.2-tf4.46.3", "trl0.13.0-tf4.46.3", "trl0.13.0-tf5.0.0"]


def test_only_and_shards(lister, tmp_path):
    config = cfg.load(Path(__file__).parents[2] / "matrix.toml")
    cells = plan.plan(config, "default", lister, only=["trl==0.12.2,transformers==4.46.3", "trl==1.0.0, transformers==5.0.0"])
    assert [c.only for c in cells] == ["trl==0.12.2,transformers==4.46.3", "trl==1.0.0,transformers==5.0.0"]
    with pytest.raises(cfg.ConfigError, match="transformers 9.0 does not exist"):
        plan.plan(config, "default", lister, only=["trl==0.12.2,transformers==9.0"])
    everything = [plan.Cell(Version(f"0.{i}"), Version("4.46.3")) for i in range(7)]
    shards = [[c for k, c in enumerate(everything) if k % 3 == i - 1] for i in (1, 2, 3)]
    assert sorted(sum(shards, [])) == everything


@pytest.mark.parametrize("bad", ["trl=0.12,transformers==4", "trl==x.y,transformers==4.46.3", "", "resolution=latest",
                                 "trl==0.12.2,trainer=nope", "trl==0.12.2,resolution=today"])
def test_malformed_only(bad):
    with pytest.raises(cfg.ConfigError, match="--only"):
        plan.parse_only(bad)


def test_only_one_axis_selects_a_row_or_column(lister, tmp_path):
    # A single axis is accepted now: that column (or row) of the profile.
    only = plan.parse_only("transformers==4.46.3")
    assert (only.trl, only.transformers) == (None, Version("4.46.3"))
    config = cfg.parse({"profiles": {"p": {"grid": [{"trl": ["0.12.*", "0.13.0"], "transformers": ["4.46.3", "5.0.0"]}]}}},
                       tmp_path / "m.toml")
    cells = plan.plan(config, "p", lister, only=["transformers==4.46.3"])
    assert [c.id for c in cells] == ["trl0.12.2-tf4.46.3", "trl0.13.0-tf4.46.3"]
    with pytest.raises(cfg.ConfigError, match="no cell of profile 'p' matches"):
        plan.plan(config, "p", lister, only=["trl==1.0.0"])


@pytest.mark.parametrize("bad", ["0/2", "3/2", "a/b", "1"])
def test_bad_shard(bad):
    with pytest.raises(cfg.ConfigError, match="--shard"):
        plan.parse_shard(bad)


def test_parse_listing_groups_files_and_yanked():
    payload = {"files": [
        {"filename": "trl-0.12.0-py3-none-any.whl", "upload-time": "2024-10-01T00:00:00Z", "yanked": False},
        {"filename": "trl-0.12.0.tar.gz", "upload-time": "2024-09-30T00:00:00Z"},
        {"filename": "trl-0.12.1.tar.gz", "yanked": "broken"},
        {"filename": "garbage.zip"},
    ]}
    rel = parse_listing(payload)
    assert [(str(r.version), r.yanked, r.uploaded) for r in rel] == [
        ("0.12.0", False, "2024-09-30T00:00:00Z"), ("0.12.1", True, "")]

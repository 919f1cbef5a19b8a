"""Regressions as "worked on the previous release, breaks on the new one", the issue kept per trainer,
the pull request's account of a run, and the logs published beside the table."""

from __future__ import annotations

import gzip
from dataclasses import replace

from compat.contract import CellResult, Failure
from compat.harness import changes, logs, regressions

KW = {"processing_class": "accepted", "tokenizer": "rejected"}
BROKE = Failure("construct", "TypeError: Trainer.__init__() got an unexpected keyword argument 'tokenizer'",
                "transformers.Trainer.__init__")


def cell(trl: str, tf: str, status: str = "compatible", trainer: str = "kto", **kw) -> CellResult:
    kw.setdefault("failure", BROKE if status == "incompatible" else None)
    return CellResult(trl, tf, "latest", status, trainer=trainer, keyword=KW, **kw)


# A table before transformers 5.25.0: trl 0.26.2 and 1.15.0 worked on 5.24.0, trl 0.25.1 did not.
OLD = [cell("0.25.1", "5.24.0", "incompatible"), cell("0.26.2", "5.24.0"), cell("1.15.0", "5.24.0"),
       cell("1.15.0", "5.24.0", trainer="dpo"), cell("0.26.2", "5.23.0")]


def test_a_new_release_is_compared_with_the_previous_release_of_its_axis_per_trainer():
    new = [*OLD, cell("0.25.1", "5.25.0"), cell("0.26.2", "5.25.0", "incompatible"),
           cell("1.15.0", "5.25.0", "error"), cell("1.15.0", "5.25.0", "unresolvable", trainer="dpo")]
    found = regressions.find(OLD, new)
    assert [(s.after.trainer, s.after.id, s.axis, str(s.before.transformers), s.regression, s.fix) for s in found] == [
        ("dpo", "trl1.15.0-tf5.25.0-dpo", "transformers", "5.24.0", True, False),
        ("kto", "trl0.25.1-tf5.25.0", "transformers", "5.24.0", False, True),
        ("kto", "trl0.26.2-tf5.25.0", "transformers", "5.24.0", True, False)]  # the error is no step
    md = regressions.markdown(found)
    assert md.startswith("## 2 regression(s): worked on the previous release, breaks on the new one")
    assert "| kto | trl 0.26.2 + transformers 5.25.0 | latest | transformers 5.24.0 | construct " \
           "| transformers.Trainer.\\_\\_init\\_\\_ | TypeError: Trainer.\\_\\_init\\_\\_() got an " in md
    assert "| dpo | trl 1.15.0 + transformers 5.25.0 | latest | transformers 5.24.0 |" in md
    assert "## 1 fix(es): broke on the previous release, works on the new one" in md
    assert "| kto | trl 0.25.1 + transformers 5.25.0 | latest | transformers 5.24.0 | construct |" in md
    # Without the new release nothing moved: no step at all.
    assert regressions.find(OLD, OLD) == []


def test_one_issue_per_trainer_opens_updates_with_new_findings_and_closes_when_none_stands():
    run1 = [*OLD, cell("0.26.2", "5.25.0", "incompatible"), cell("1.15.0", "5.25.0", "error")]
    found = regressions.find(OLD, run1)
    [opened] = regressions.issue_actions(found, run1, [], "https://ci/1")
    assert (opened.action, opened.target) == ("create", "kto-compat: regression detected (kto)")
    assert "<!-- regression: trl0.26.2-tf5.24.0 -> trl0.26.2-tf5.25.0 -->" in opened.body and "https://ci/1" in opened.body
    issue = {"number": 7, "title": opened.target, "body": opened.body}
    # The same standing regression, nothing new: no edit.
    assert regressions.issue_actions([], run1, [issue], "https://ci/2") == []
    # A second run measures the errored cell: a second regression of the same trainer updates the one issue.
    run2 = [c for c in run1 if c.status != "error"] + [cell("1.15.0", "5.25.0", "incompatible")]
    [edit] = regressions.issue_actions(regressions.find(run1, run2), run2, [issue], "https://ci/2")
    assert (edit.action, edit.target) == ("edit", "7") and edit.body.count("<!-- regression:") == 2
    issue = {**issue, "body": edit.body}
    # transformers 5.26.0 works again on both rows: nothing stands, the issue closes with a comment.
    run3 = [*run2, cell("0.26.2", "5.26.0"), cell("1.15.0", "5.26.0")]
    [close] = regressions.issue_actions(regressions.find(run2, run3), run3, [issue], "https://ci/3")
    assert (close.action, close.target) == ("close", "7") and "trl0.26.2-tf5.24.0 -> trl0.26.2-tf5.25.0" in close.body
    # A full rerun finds the earlier release broken too: 5.24.0 -> 5.25.0 no longer stands, and what the
    # rerun found (the pair that worked in the last run breaks now) replaces it.
    rerun = [c if c.id != "trl0.26.2-tf5.24.0" else cell("0.26.2", "5.24.0", "incompatible") for c in run1]
    [edited] = regressions.issue_actions(regressions.find(run1, rerun), rerun, [{**issue, "body": opened.body}], "u")
    assert edited.action == "edit" and regressions.MARKER.findall(edited.body) == [("trl0.26.2-tf5.24.0",) * 2]
    # Another trainer's issue is its own: a DPO regression never lands in the KTO issue.
    dpo = [*OLD, cell("1.15.0", "5.25.0", "incompatible", trainer="dpo")]
    acts = regressions.issue_actions(regressions.find(OLD, dpo), dpo, [issue], "u")
    assert [(a.action, a.target) for a in acts] == [("create", "kto-compat: regression detected (dpo)"), ("close", "7")]


def test_the_pull_request_says_what_was_measured_and_errors_alone_are_no_change():
    new = [*OLD, cell("0.26.2", "5.25.0", "incompatible", log="logs/trl0.26.2-tf5.25.0.log.gz"),
           cell("1.15.0", "5.25.0"), cell("0.25.1", "5.25.0", "error", failure=Failure("resolve", "Failed to fetch"))]
    found = changes.Changes(tuple(OLD), tuple(new))
    assert found.changed
    text = changes.body(found, "https://github.example/o/r/blob/b/docs/compat")
    assert "- new transformers 5.25.0: 3 cell(s): 1 compatible, 1 incompatible, 1 error" in text
    assert "## 1 regression(s)" in text and "## 1 harness error(s), retried by the next run" in text
    assert "[log](https://github.example/o/r/blob/b/docs/compat/logs/trl0.26.2-tf5.25.0.log.gz)" in text
    assert len(text) < 4000
    # Only errors and timings moved: nothing to propose.
    errors_only = [*(replace(c, seconds=c.seconds + 5) for c in OLD), cell("0.25.1", "5.25.0", "error")]
    assert not changes.Changes(tuple(OLD), tuple(errors_only)).changed


def test_logs_are_published_compressed_within_the_budget_and_only_published_ones_are_linked(tmp_path):
    shard, base, out = tmp_path / "shard", tmp_path / "docs", tmp_path / "out"
    (shard / "logs").mkdir(parents=True)
    (base / "logs").mkdir(parents=True)
    failing, working, lost = cell("0.26.2", "5.25.0", "incompatible"), cell("1.15.0", "5.25.0"), cell("0.25.1", "5.24.0")
    (shard / "logs" / f"{failing.id}.log").write_text("x" * 5000 + "TypeError\n")
    (shard / "logs" / f"{working.id}.log").write_text("trained 3 steps\n" * 400)
    (base / "logs" / f"{cell('0.26.2', '5.24.0').id}.log.gz").write_bytes(gzip.compress(b"old log", mtime=0))
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "gone.log.gz").write_bytes(b"stale")
    cells = [failing, working, replace(lost, log=f"logs/{lost.id}.log"), cell("0.26.2", "5.24.0")]
    linked = {c.id: c.log for c in logs.publish([shard, base], out, cells)}
    assert linked == {failing.id: f"logs/{failing.id}.log.gz", working.id: f"logs/{working.id}.log.gz",
                      lost.id: None, "trl0.26.2-tf5.24.0": "logs/trl0.26.2-tf5.24.0.log.gz"}
    assert sorted(p.name for p in (out / "logs").iterdir()) == sorted(f"{i}.log.gz" for i, v in linked.items() if v)
    assert gzip.decompress((out / "logs" / f"{failing.id}.log.gz").read_bytes()).endswith(b"TypeError\n")
    first = (out / "logs" / f"{working.id}.log.gz").read_bytes()
    logs.publish([shard, base], out, cells)
    assert (out / "logs" / f"{working.id}.log.gz").read_bytes() == first  # no time in the gzip header
    # A budget that holds one log: the failing cell's is the one kept; the others lose their link.
    size = len((out / "logs" / f"{failing.id}.log.gz").read_bytes())
    tight = {c.id: c.log for c in logs.publish([shard, base], out, cells, budget=size)}
    assert [k for k, v in tight.items() if v] == [failing.id]
    assert [p.name for p in (out / "logs").iterdir()] == [f"{failing.id}.log.gz"]


def test_a_respelled_version_is_not_a_change():
    """1.0 and 1.0.0 are one cell (PEP 440): the same verdict under another spelling opens no pull request."""
    from compat.contract import CellResult
    from compat.harness.changes import Changes

    old = (CellResult("1.0", "4.46.3", "latest", "compatible"),)
    new = (CellResult("1.0.0", "4.46.3", "latest", "compatible"),)
    assert not Changes(old, new).changed
    assert Changes(old, (CellResult("1.0.0", "4.46.3", "latest", "incompatible"),)).changed

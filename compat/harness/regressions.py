"""Regressions and fixes: what a release changed for pairs that worked (or broke) on the release before it.

A new release is compared with its neighbour: the cell of the previous release
on that axis with every other axis, the trainer and the resolution mode the
same. Worked there and breaks here is a regression; broke there and works here
is a fix. A cell measured in both the old and the new table (a `full` rerun)
is compared with itself as well. A harness `error` says nothing about the
pair and is never one side of a step.

The daily run keeps one issue per trainer while a regression stands: the
issue's body names each step in a marker, so a later run re-judges them
against the table it just merged and closes the issue once none stands (the
earlier release broke too, the pair was re-measured working, or a newer
release of that axis works again).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from packaging.version import Version

from compat.contract import CellResult, Status
from compat.harness import axes
from compat.harness.reports.vocab import first_line, md

BROKEN = (Status.INCOMPATIBLE, Status.UNRESOLVABLE)
TITLE = "kto-compat: regression detected ({trainer})"
MARKER = re.compile(r"<!-- regression: (\S+) -> (\S+) -->")


@dataclass(frozen=True)
class Step:
    """``before`` -> ``after``: the previous release of ``axis`` and the new one ("rerun": the same cell)."""

    axis: str
    before: CellResult
    after: CellResult

    @property
    def regression(self) -> bool:
        return self.before.status == Status.COMPATIBLE and self.after.status in BROKEN

    @property
    def fix(self) -> bool:
        return self.before.status in BROKEN and self.after.status == Status.COMPATIBLE

    @property
    def marker(self) -> str:
        return f"<!-- regression: {self.before.id} -> {self.after.id} -->"


def _row(cell: CellResult, axis: str) -> tuple[object, ...]:
    """Everything but ``axis``: the cells one release of ``axis`` is compared along (further axes included)."""
    return (cell.trainer, cell.resolution, cell.forced, *((a, v) for a, v in cell.all_axes.items() if a != axis))


def _measured(cells: Iterable[CellResult]) -> list[CellResult]:
    return [c for c in cells if c.status in (Status.COMPATIBLE, *BROKEN)]


def previous(cells: Sequence[CellResult], cell: CellResult, axis: str) -> CellResult | None:
    """The measured cell on the release of ``axis`` just before ``cell``'s, in the same row."""
    row = _row(cell, axis)
    mine = cell.all_axes[axis]
    earlier = [c for c in _measured(cells) if _row(c, axis) == row and c.all_axes[axis] < mine]
    return max(earlier, key=lambda c: c.all_axes[axis], default=None)


def find(old: Sequence[CellResult], new: Sequence[CellResult]) -> list[Step]:
    """Regressions and fixes in ``new``: each newly measured cell against its neighbour on the previous
    release of each axis, and each re-measured cell against its old verdict. Sorted by cell."""
    # Keyed by parsed versions: a report spelling 1.0 and another 1.0.0 describe one cell.
    before = {c.key: c for c in _measured(old)}
    known: dict[str, set[Version]] = {}
    for c in before.values():
        for a, v in c.all_axes.items():
            known.setdefault(a, set()).add(v)
    measured = _measured(new)
    steps: list[Step] = []
    for cell in measured:
        if cell.key in before:
            candidates = [Step("rerun", before[cell.key], cell)]
        else:
            # Along the axes that bring a new release; a cell of a release measured before (it erred
            # then) along the axes where it is its row's newest release.
            axes = [a for a, v in cell.all_axes.items() if v not in known.get(a, set())] or \
                [a for a, v in cell.all_axes.items() if not any(_row(c, a) == _row(cell, a) and c.all_axes[a] > v
                                                                for c in measured)]
            candidates = [Step(a, p, cell) for a in axes if (p := previous(new, cell, a)) is not None]
        steps += [s for s in candidates if s.regression or s.fix]
    return sorted(steps, key=lambda s: (s.after.key, s.after.id, s.axis))


def standing(step: Step, cells: Mapping[str, CellResult]) -> Step | None:
    """The step as the table ``cells`` tells it today, when it is still a regression: both cells
    still measured as they were, and no newer release of the axis working again in that row."""
    before, after = cells.get(step.before.id), cells.get(step.after.id)
    if before is None or after is None:
        return None
    if step.axis == "rerun":  # the verdict before the rerun is gone from the table; it stands while the pair breaks
        return step if after.status in BROKEN else None
    now = Step(step.axis, before, after)
    if not now.regression:
        return None
    if step.axis in after.all_axes:
        later = [c for c in cells.values() if _row(c, step.axis) == _row(after, step.axis)
                 and c.all_axes[step.axis] > after.all_axes[step.axis] and c.status == Status.COMPATIBLE]
        if later:
            return None
    return now


def tracked(body: str, cells: Mapping[str, CellResult]) -> list[Step]:
    """The steps an issue body names in its markers, as the table ``cells`` has them (unknown ids dropped)."""
    out = []
    for before_id, after_id in MARKER.findall(body):
        before, after = cells.get(before_id), cells.get(after_id)
        if before is not None and after is not None:
            axis = next((a for a, v in after.all_axes.items() if before.all_axes.get(a) != v), "rerun")
            if axis == "rerun":  # tracked because it was compatible before the rerun that broke it
                before = replace(after, status=Status.COMPATIBLE, failure=None)
            out.append(Step(axis, before, after))
    return out


def table(steps: Sequence[Step], heading: str) -> list[str]:
    """A Markdown table of steps with the trainer, and the failure of the broken side: for a regression
    the new release's, for a fix the previous one's. Every cell-derived string escaped."""
    if not steps:
        return []
    lines = [heading, "", "| trainer | pair | resolution | compared with | stage | raised by | first line of the error |",
             "|---|---|---|---|---|---|---|"]
    for s in steps:
        broken = s.after if s.regression else s.before
        f = broken.failure
        was = "the last run" if s.axis == "rerun" else f"{s.axis} {md(s.before.all_axes[s.axis])}"
        lines.append(
            f"| {md(s.after.trainer)} | {axes.named(s.after.all_axes, md)} | "
            f"{md(s.after.resolution)} | {was} | {md(f.stage) if f else md(broken.status)} | "
            f"{md(f.raised_by or '') if f else ''} | {md(first_line(f.message)) if f else ''} |")
    return lines + [""]


def markdown(found: Sequence[Step]) -> str:
    """Regressions, then fixes, as Markdown; empty when there is neither."""
    regressions = [s for s in found if s.regression]
    fixes = [s for s in found if s.fix]
    lines = table(regressions, f"## {len(regressions)} regression(s): worked on the previous release, breaks on the new one")
    lines += table(fixes, f"## {len(fixes)} fix(es): broke on the previous release, works on the new one")
    return "\n".join(lines)


@dataclass(frozen=True)
class IssueAction:
    """One `gh` call: create (target: the title), edit, or close (target: the issue number)."""

    action: str
    target: str
    body: str


def issue_actions(found: Sequence[Step], cells: Sequence[CellResult], open_issues: Sequence[Mapping[str, object]],
                  run_url: str) -> list[IssueAction]:
    """Per trainer: open an issue for regressions that stand, update it when what stands changed,
    close it (with a comment) when none stands any more. ``open_issues``: `gh issue list --json
    number,title,body`."""
    by_id = {c.id: c for c in cells}
    by_title = {str(i.get("title")): i for i in open_issues}
    trainers = sorted({s.after.trainer for s in found if s.regression}
                      | {t for t in (_trainer_of(str(title)) for title in by_title) if t})
    actions = []
    for trainer in trainers:
        title = TITLE.format(trainer=trainer)
        issue = by_title.get(title)
        old_body = str(issue.get("body") or "") if issue else ""
        kept = {s.marker: s for s in (standing(s, by_id) for s in tracked(old_body, by_id)) if s is not None}
        kept.update({s.marker: s for s in found if s.regression and s.after.trainer == trainer})
        steps = sorted(kept.values(), key=lambda s: (s.after.key, s.after.id, s.axis))
        if steps:
            body = "\n".join([*table(steps, f"## {trainer}: {len(steps)} regression(s) standing"),
                              *(s.marker for s in steps), "", f"Last checked by {run_url}", ""])
            if issue is None:
                actions.append(IssueAction("create", title, body))
            elif MARKER.findall(body) != MARKER.findall(old_body) or not old_body:
                actions.append(IssueAction("edit", str(issue["number"]), body))
        elif issue is not None:
            gone = "\n".join(f"- {s.before.id} -> {s.after.id}" for s in tracked(old_body, by_id))
            actions.append(IssueAction("close", str(issue["number"]),
                                       f"No regression stands any more (checked by {run_url}):\n\n{gone}\n"))
    return actions


def _trainer_of(title: str) -> str | None:
    m = re.fullmatch(re.escape(TITLE).replace(r"\{trainer\}", r"([\w-]+)"), title)
    return m.group(1) if m else None

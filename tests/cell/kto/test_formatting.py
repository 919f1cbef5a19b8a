"""Formatter outcomes on boundary rows, per chat template, inside one cell.

Runs in the cell's real transformers with the offline tokenizer from
``compat.cell.tiny`` and the templates of ``compat.cell.templates``: how a row renders
(or fails) depends on the installed ``apply_chat_template`` as much as on the
template, so the table is measured per cell.

Recorded as ``formatter.legacy`` / ``formatter.adapter`` (text mode),
``formatter.adapter_conversational`` (rendered here) and
``formatter.adapter_trl`` (rendered by the installed TRL's
``maybe_apply_chat_template``): maps of ``<case>@<template>`` to an outcome. Legacy tests only measure: they fail only if measuring crashes. The
robust formatter's tests fail on any outcome but ``pass`` - that is our bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from compat.cell.cases import CASES, Case, classify
from compat.cell.formatting import format_row, format_rows, render_conversational
from compat.cell.legacy import legacy_format
from compat.cell.templates import TEMPLATES
from compat.cell.tiny import make_tokenizer

STAGE = "format"


@pytest.fixture(scope="module")
def trl_templating() -> Any:
    """TRL's own conversational templating; importing trl is measured elsewhere."""
    try:
        from trl.data_utils import maybe_apply_chat_template
    except Exception as exc:  # noqa: BLE001 - any import failure means "not measurable here"
        pytest.skip(f"trl.data_utils.maybe_apply_chat_template unavailable: {type(exc).__name__}: {exc}")
    return maybe_apply_chat_template


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Any]:
    return {name: make_tokenizer(chat_template=template) for name, template in TEMPLATES.items()}


def _record(observe: Any, formatter: str, case_id: str, outcome: str) -> None:
    observe.merge(f"formatter.{formatter}", case_id, outcome)


def _conversational(tokenizer: Any) -> Any:
    """The robust formatter in conversational mode, templated as a trainer would."""

    def run(row: Mapping[str, Any], index: int) -> Mapping[str, Any]:
        return render_conversational(format_row(row, tokenizer, index, mode="conversational"), tokenizer)

    return run


def _whole(case: Case, tokenizer: Any) -> str | None:
    """The correct training string for a valid case: the conversation the case
    means (written by hand in compat.cell.cases) as the template renders it,
    when it renders without losing any of the case's text. ``None`` when there
    is no such reference (the template refuses or drops part of it, so a
    formatter must repair the conversation and only the pieces can be checked)."""
    if case.invalid:
        return None
    if case.conversation is None:  # a standard (string) row: trainers concatenate it as it is
        row = case.row
        return row["prompt"] + row["completion"] if isinstance(row.get("prompt"), str) else None
    messages = [dict(m) for part in case.conversation for m in part]
    marked = [{"role": m["role"], "content": f"kto-compat-reference-{i}"} for i, m in enumerate(messages)]
    try:
        whole = tokenizer.apply_chat_template(messages, tokenize=False)
        # A message the template drops whole would go unnoticed by a content check when its text
        # recurs elsewhere: render each message as a unique marker and look for every one.
        shape = tokenizer.apply_chat_template(marked, tokenize=False)
    except Exception:  # noqa: BLE001 - the template refuses the plain conversation: no reference
        return None
    if not isinstance(whole, str) or any(m["content"] not in shape for m in marked):
        return None
    texts = [m["content"].strip() for m in messages if m["content"].strip()]
    return whole if all(t in whole for t in texts) else None


def _where(exc: BaseException) -> str:
    """``module.function`` of the innermost frame: transformers or the template?"""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_globals.get('__name__', '?')}.{tb.tb_frame.f_code.co_name}"


def _each_case(observe: Any, kind: str, template: str, run: Any, whole: Any = None) -> list[str]:
    """Classify every boundary case for one formatter under one template; record each outcome.
    Returns the non-passing ones as ``case: outcome`` (one loop, not a pytest item per case:
    the per-case outcomes are the record, and ~600 items cost a second of pytest overhead)."""
    bad = []
    for case in CASES:
        outcome = classify(case, run, whole=whole(case) if whole else None)
        _record(observe, kind, f"{case.id}@{template}", outcome)
        if outcome != "pass":
            bad.append(f"{case.id}: {outcome} ({case.about or case.reason})")
    return bad


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_legacy_formatter(template: str, tokenizers: dict[str, Any], observe: Any) -> None:
    """Measure the pre-0.12 example script's formatter; it is expected to break, so only the
    measuring itself may fail this test (an outcome outside the contract's vocabulary).

    Errors are also recorded under ``formatter_legacy_errors`` with the
    function that raised, since the same type can come from transformers'
    ``apply_chat_template`` or from the template's ``raise_exception``.
    """
    tok = tokenizers[template]
    current: list[str] = []

    def run(row: Mapping[str, Any], _index: int) -> Mapping[str, Any]:
        try:
            return legacy_format(row, tok)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            observe.merge("formatter_legacy_errors", f"{current[-1]}@{template}", f"{type(exc).__name__} in {_where(exc)}: {first}")
            raise

    outcomes = []
    for case in CASES:
        current.append(case.id)
        outcome = classify(case, run, whole=_whole(case, tok))
        _record(observe, "legacy", f"{case.id}@{template}", outcome)
        outcomes.append(outcome)
    assert all(o in ("pass", "wrong") or o.startswith("error:") for o in outcomes), outcomes


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_adapter_formatter_text(template: str, tokenizers: dict[str, Any], observe: Any) -> None:
    """Text mode: every valid case renders to exactly the template's own rendering (or, where the
    template cannot render it as is, keeps every piece); every invalid one is refused naming the row."""
    tok = tokenizers[template]
    bad = _each_case(observe, "adapter", template, lambda row, index: format_row(row, tok, index, mode="text"),
                     lambda case: _whole(case, tok))
    assert not bad, f"robust formatter under {template}: " + "; ".join(bad)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_adapter_formatter_conversational(template: str, tokenizers: dict[str, Any], observe: Any) -> None:
    """Conversational output must render through the template with its content intact."""
    tok = tokenizers[template]
    bad = _each_case(observe, "adapter_conversational", template, _conversational(tok))
    assert not bad, f"conversational output under {template}: " + "; ".join(bad)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_adapter_conversational_through_trl(template: str, tokenizers: dict[str, Any], trl_templating: Any,
                                            observe: Any) -> None:
    """The installed TRL's templating of conversational output keeps the content."""
    tok = tokenizers[template]

    def run(row: Mapping[str, Any], index: int) -> Mapping[str, Any]:
        return trl_templating(format_row(row, tok, index, mode="conversational"), tok)

    bad = _each_case(observe, "adapter_trl", template, run)
    assert not bad, f"TRL templating of conversational output under {template}: " + "; ".join(bad)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_format_rows_drop_and_raise(template: str, tokenizers: dict[str, Any]) -> None:
    """``drop`` keeps exactly the valid rows; ``raise`` stops at the first
    invalid one with an error naming its index."""
    tok = tokenizers[template]
    rows = [dict(case.row) for case in CASES]
    kept, dropped = format_rows(rows, tok, on_invalid="drop")
    assert dropped == sum(case.invalid for case in CASES)
    assert len(kept) == sum(not case.invalid for case in CASES)
    assert all(isinstance(r["prompt"], str) and isinstance(r["completion"], str) and isinstance(r["label"], bool) for r in kept)
    first_bad = next(i for i, case in enumerate(CASES) if case.invalid)
    with pytest.raises(ValueError, match=rf"^row {first_bad}: "):
        format_rows(rows, tok, on_invalid="raise")

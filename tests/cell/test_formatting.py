"""Formatter outcomes on boundary rows, per chat template, inside one cell.

Runs in the cell's real transformers with the offline tokenizer from
``compat.tiny`` and the templates of ``compat.templates``: how a row renders
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

from compat.cases import CASES, Case, classify
from compat.formatting import format_row, format_rows, legacy_format, render_conversational
from compat.templates import TEMPLATES
from compat.tiny import make_tokenizer

_OUTCOMES: dict[str, dict[str, str]] = {"legacy": {}, "adapter": {}, "adapter_conversational": {}, "adapter_trl": {}}

PARAMS = [pytest.param(case, name, id=f"{case.id}@{name}") for name in TEMPLATES for case in CASES]


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
    _OUTCOMES[formatter][case_id] = outcome
    observe.merge("formatter", formatter, dict(sorted(_OUTCOMES[formatter].items())))


def _conversational(tokenizer: Any) -> Any:
    """The robust formatter in conversational mode, templated as a trainer would."""

    def run(row: Mapping[str, Any], index: int) -> Mapping[str, Any]:
        return render_conversational(format_row(row, tokenizer, index, mode="conversational"), tokenizer)

    return run


def _whole(case: Case, tokenizer: Any) -> str | None:
    """The correct training string for a valid case: its normalised
    conversation as the template renders it for inference (prompt with a
    generation prompt, then the reply). ``None`` when there is none."""
    if case.invalid:
        return None
    try:
        rendered = _conversational(tokenizer)(dict(case.row), 0)
    except ValueError:
        return None  # the adapter tests report this
    return rendered["prompt"] + rendered["completion"]


def _where(exc: BaseException) -> str:
    """``module.function`` of the innermost frame: transformers or the template?"""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_globals.get('__name__', '?')}.{tb.tb_frame.f_code.co_name}"


@pytest.mark.parametrize(("case", "template"), PARAMS)
def test_legacy_formatter(case: Case, template: str, tokenizers: dict[str, Any], observe: Any) -> None:
    """Measure the pre-0.12 example script's formatter; never fails on the outcome.

    Errors are also recorded under ``formatter_legacy_errors`` with the
    function that raised, since the same type can come from transformers'
    ``apply_chat_template`` or from the template's ``raise_exception``.
    """
    tok = tokenizers[template]
    case_id = f"{case.id}@{template}"

    def run(row: Mapping[str, Any], _index: int) -> Mapping[str, Any]:
        try:
            return legacy_format(row, tok)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            observe.merge("formatter_legacy_errors", case_id, f"{type(exc).__name__} in {_where(exc)}: {first}")
            raise

    outcome = classify(case, run, whole=_whole(case, tok))
    _record(observe, "legacy", case_id, outcome)
    assert outcome == "pass" or outcome == "wrong" or outcome.startswith("error:")


@pytest.mark.parametrize(("case", "template"), PARAMS)
def test_adapter_formatter_text(case: Case, template: str, tokenizers: dict[str, Any], observe: Any) -> None:
    tok = tokenizers[template]
    outcome = classify(case, lambda row, index: format_row(row, tok, index, mode="text"), whole=_whole(case, tok))
    _record(observe, "adapter", f"{case.id}@{template}", outcome)
    assert outcome == "pass", f"{case.id}@{template}: robust formatter gave {outcome} ({case.about or case.reason})"


@pytest.mark.parametrize(("case", "template"), PARAMS)
def test_adapter_formatter_conversational(case: Case, template: str, tokenizers: dict[str, Any], observe: Any) -> None:
    """Conversational output must render through the template with its content intact."""
    tok = tokenizers[template]
    outcome = classify(case, _conversational(tok))
    _record(observe, "adapter_conversational", f"{case.id}@{template}", outcome)
    assert outcome == "pass", f"{case.id}@{template}: conversational output gave {outcome}"


@pytest.mark.parametrize(("case", "template"), PARAMS)
def test_adapter_conversational_through_trl(
    case: Case, template: str, tokenizers: dict[str, Any], trl_templating: Any, observe: Any
) -> None:
    """The installed TRL's templating of conversational output keeps the content."""
    tok = tokenizers[template]

    def run(row: Mapping[str, Any], index: int) -> Mapping[str, Any]:
        return trl_templating(format_row(row, tok, index, mode="conversational"), tok)

    outcome = classify(case, run)
    _record(observe, "adapter_trl", f"{case.id}@{template}", outcome)
    assert outcome == "pass", f"{case.id}@{template}: TRL templating of conversational output gave {outcome}"


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

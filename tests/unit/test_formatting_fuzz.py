"""Host-side tests of the formatters and outcome classification.

No transformers here: fake tokenizers implement ``apply_chat_template`` with
string operations and fail the way real templates do (a ChatML renderer that
concatenates, so ``None``/list content raises ``TypeError``; an alternating
one that raises on order and on the system role; one that silently drops
``tool`` turns). Hypothesis throws arbitrary rows at the robust formatter: it
must return rows that keep every piece of text, or raise ``ValueError``
naming the row - never anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from compat.cell.cases import CASES, CASES_BY_ID, Case, classify, content_kept
from compat.cell.formatting import ROLES, InvalidRowError, format_row, format_rows, normalize_row
from compat.cell.legacy import legacy_format


class FakeTemplateError(Exception):
    """Stands in for ``jinja2.TemplateError`` from ``raise_exception``."""


class ChatMLTokenizer:
    """ChatML by plain concatenation, like the Jinja template (content must be str)."""

    def apply_chat_template(self, messages: Any, tokenize: bool = True, add_generation_prompt: bool = False, **_: Any) -> str:
        assert tokenize is False
        out = ""
        for m in messages:
            out += "<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n"
        return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


class AlternatingTokenizer(ChatMLTokenizer):
    """Gemma-like: no system role, strict user/assistant alternation, trims content."""

    def apply_chat_template(self, messages: Any, tokenize: bool = True, add_generation_prompt: bool = False, **_: Any) -> str:
        out = "<bos>"
        for i, m in enumerate(messages):
            if m["role"] == "system":
                raise FakeTemplateError("System role not supported")
            if (m["role"] == "user") != (i % 2 == 0):
                raise FakeTemplateError("Conversation roles must alternate user/assistant/user/assistant/...")
            out += f"<start_of_turn>{m['role']}\n" + m["content"].strip() + "<end_of_turn>\n"
        return out + ("<start_of_turn>assistant\n" if add_generation_prompt else "")


class ToolDroppingTokenizer(ChatMLTokenizer):
    """Zephyr-like: renders nothing for roles it does not know (silent loss)."""

    def apply_chat_template(self, messages: Any, tokenize: bool = True, add_generation_prompt: bool = False, **_: Any) -> str:
        return super().apply_chat_template([m for m in messages if m["role"] != "tool"], tokenize, add_generation_prompt)


class EmptyRejectingTokenizer(ChatMLTokenizer):
    """transformers >= 4.45 behaviour on ``[]``: ``conversation[0]`` raises IndexError."""

    def apply_chat_template(self, messages: Any, tokenize: bool = True, add_generation_prompt: bool = False, **_: Any) -> str:
        if isinstance(messages, (list, tuple)):
            messages[0]  # noqa: B018 - the IndexError is the point
        return super().apply_chat_template(messages, tokenize, add_generation_prompt)


TOKENIZERS = {
    "chatml": ChatMLTokenizer(),
    "alternating": AlternatingTokenizer(),
    "tool_dropping": ToolDroppingTokenizer(),
}


# ------------------------------------------------------------------ strategies

_text = st.text(max_size=30)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _text)
_junk = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)), max_leaves=8)
_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
    st.fixed_dictionaries({"type": st.sampled_from(["image", "text", None]), "text": _junk}),
    _junk,
)
_content = st.one_of(_text, _text, st.lists(_part, max_size=3), _junk)
_role = st.one_of(st.sampled_from(sorted(ROLES)), st.sampled_from(sorted(ROLES)), st.sampled_from(["human", "gpt", "", "User"]), _junk)
_call = st.one_of(
    st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=10), "arguments": st.one_of(st.dictionaries(_text, _scalar, max_size=2), _text)})}),
    st.fixed_dictionaries({"name": st.text(max_size=10), "arguments": _junk}),
    _junk,
)
_message = st.one_of(
    st.fixed_dictionaries({"role": _role, "content": _content}),
    st.fixed_dictionaries({"role": _role}, optional={"content": _content, "tool_calls": st.lists(_call, max_size=2)}),
    _junk,
)
_side = st.one_of(_text, st.lists(_message, max_size=5), _junk)
_label = st.one_of(st.booleans(), st.booleans(), _junk)
_chaos_row = st.one_of(
    st.fixed_dictionaries({}, optional={"prompt": _side, "completion": _side, "label": _label, "extra": _junk}),
    _junk,
)

# Well-formed rows, so the success paths are fuzzed as hard as the errors.
_good_text = st.text(min_size=1, max_size=40)
_good_message = st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(["system", "user", "assistant", "tool", "user"]), _good_text)
_good_row = st.fixed_dictionaries(
    {
        "prompt": st.one_of(_good_text, st.lists(_good_message, min_size=1, max_size=4)),
        "completion": st.one_of(
            _good_text,
            st.builds(lambda first, rest: [first, *rest], st.builds(lambda c: {"role": "assistant", "content": c}, _good_text), st.lists(_good_message, max_size=3)),
        ),
        "label": st.booleans(),
    }
)
_row = st.one_of(_good_row, _chaos_row)


# -------------------------------------------------------------------- helpers


def _texts(side: Any) -> list[str]:
    """Every text a *valid* prompt/completion value holds (strings, joined parts)."""
    if isinstance(side, str):
        return [side]
    texts = []
    for m in side or []:
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.append("".join(p["text"] for p in content))
    return texts


def _check(row: Any, out: Mapping[str, Any], mode: str, tokenizer: Any) -> None:
    """A successful result is well-formed and keeps every text of the row."""
    assert set(out) == {"prompt", "completion", "label"}
    assert out["label"] is row["label"] or out["label"] == bool(row["label"])
    assert isinstance(out["label"], bool)
    strip = isinstance(tokenizer, AlternatingTokenizer)
    if mode == "text" or isinstance(out["prompt"], str):
        assert isinstance(out["prompt"], str) and isinstance(out["completion"], str)
        everything = out["prompt"] + out["completion"]
    else:
        for side in ("prompt", "completion"):
            assert isinstance(out[side], list) and out[side]
            for m in out[side]:
                assert set(m) == {"role", "content"} and m["role"] in ROLES and isinstance(m["content"], str)
        assert out["completion"][0]["role"] == "assistant"
        everything = "\x00".join(m["content"] for m in out["prompt"] + out["completion"])
    for text in _texts(row.get("prompt")) + _texts(row["completion"]):
        piece = text.strip() if strip else text
        assert piece in everything, f"lost {piece!r}"


# ----------------------------------------------------------------------- fuzz


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=_row, index=st.integers(0, 10**6), name=st.sampled_from(sorted(TOKENIZERS)), mode=st.sampled_from(["text", "conversational"]))
def test_robust_formatter_keeps_content_or_raises_value_error(row: Any, index: int, name: str, mode: str) -> None:
    tokenizer = TOKENIZERS[name]
    try:
        out = format_row(row, tokenizer, index, mode=mode)  # type: ignore[arg-type]
    except ValueError as exc:
        assert str(exc).startswith(f"row {index}: "), str(exc)
        assert len(str(exc)) < 2000
        event("rejected: " + str(exc).split(": ", 1)[1].split(" ", 3)[0])
        return
    event(f"formatted ({mode})")
    _check(row, out, mode, tokenizer)


@settings(max_examples=300, deadline=None)
@given(row=_good_row, name=st.sampled_from(sorted(TOKENIZERS)))
def test_well_formed_rows_format_on_every_template(row: Any, name: str) -> None:
    """A good row is never rejected: repairs make every fake template accept it."""
    tokenizer = TOKENIZERS[name]
    if isinstance(row["prompt"], list) and all(m["role"] == "assistant" for m in row["prompt"][-1:]):
        with pytest.raises(ValueError, match="prompt ends with an assistant turn"):
            format_row(row, tokenizer, 3)
        return
    prompt = normalize_row(row, 3)["prompt"]
    if name == "alternating" and not isinstance(prompt, str) and prompt[0]["role"] == "assistant":
        # Nothing can make an assistant-first conversation alternate from the user.
        with pytest.raises(ValueError, match=r"^row 3: the chat template cannot render"):
            format_row(row, tokenizer, 3)
        return
    out = format_row(row, tokenizer, 3, mode="text")
    _check(row, out, "text", tokenizer)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_row, max_size=8))
def test_format_rows_drop_counts_invalid_rows(rows: list[Any]) -> None:
    tokenizer = TOKENIZERS["chatml"]
    valid = 0
    for i, row in enumerate(rows):
        try:
            format_row(row, tokenizer, i)
            valid += 1
        except ValueError:
            pass
    kept, dropped = format_rows(rows, tokenizer, on_invalid="drop")
    assert (len(kept), dropped) == (valid, len(rows) - valid)


# ---------------------------------------------------------------- robust rules


def test_normalize_merges_folds_and_moves_context() -> None:
    row = {
        "completion": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]},
            {"role": "assistant", "content": "d"},
            {"role": "assistant", "content": "e"},
        ],
        "label": True,
    }
    assert normalize_row(row, 0) == {
        "prompt": [{"role": "user", "content": "a\n\nbc"}],
        "completion": [{"role": "assistant", "content": "d\n\ne"}],
        "label": True,
    }


@pytest.mark.parametrize("prompt", [None, [], ""])
def test_without_a_prompt_the_final_reply_is_the_completion(prompt: Any) -> None:
    row = {"prompt": prompt, "completion": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}, {"role": "assistant", "content": "a3"}], "label": True}
    out = normalize_row(row, 0)
    assert [m["content"] for m in out["prompt"]] == ["u1", "a1", "u2"]
    assert out["completion"] == [{"role": "assistant", "content": "a2\n\na3"}]


def test_with_a_prompt_the_whole_labelled_completion_is_kept() -> None:
    row = {"prompt": "q", "completion": [{"role": "user", "content": "ctx"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}], "label": True}
    out = normalize_row(row, 0)
    assert out["prompt"] == [{"role": "user", "content": "q\n\nctx"}]
    assert [m["content"] for m in out["completion"]] == ["a1", "u2", "a2"]


def test_empty_tool_calls_on_any_role_mean_no_calls() -> None:
    row = {"prompt": [{"role": "user", "content": "q", "tool_calls": None}, {"role": "tool", "content": "r", "tool_calls": []}], "completion": [{"role": "assistant", "content": "a", "tool_calls": []}], "label": True}
    assert normalize_row(row, 0)["completion"] == [{"role": "assistant", "content": "a"}]
    row["prompt"][0]["tool_calls"] = [{"function": {"name": "f"}}]
    with pytest.raises(ValueError, match="only assistant messages may call tools"):
        normalize_row(row, 0)


def test_trailing_system_turn_becomes_a_user_turn() -> None:
    row = {"prompt": [{"role": "user", "content": "u"}, {"role": "system", "content": "s"}], "completion": "a", "label": True}
    assert normalize_row(row, 0)["prompt"] == [{"role": "user", "content": "u\n\ns"}]


def test_text_mode_is_the_templated_conversation_split_at_the_reply() -> None:
    tok = TOKENIZERS["chatml"]
    row = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yo"}], "label": False}
    out = format_row(row, tok, 0)
    assert out == {
        "prompt": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "completion": "yo<|im_end|>\n",
        "label": False,
    }


def test_system_folded_only_when_the_template_rejects_it() -> None:
    row = {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], "completion": "A", "label": True}
    kept = format_row(row, TOKENIZERS["chatml"], 0, mode="conversational")
    folded = format_row(row, TOKENIZERS["alternating"], 0, mode="conversational")
    assert [m["role"] for m in kept["prompt"]] == ["system", "user"]
    assert folded["prompt"] == [{"role": "user", "content": "S\n\nU"}]


def test_dropped_tool_turn_is_detected_and_moved_to_the_user_side() -> None:
    row = {
        "prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "content": "RESULT"}],
        "completion": [{"role": "assistant", "content": "done"}],
        "label": True,
    }
    out = format_row(row, TOKENIZERS["tool_dropping"], 0)
    assert "RESULT" in out["prompt"] and '"name": "f"' in out["prompt"]


@pytest.mark.parametrize(
    ("label", "ok"),
    [(True, True), (False, True), (1, False), (0, False), ("true", False), ("false", False), (None, False), (1.0, False)],
)
def test_label_must_be_a_real_bool(label: Any, ok: bool) -> None:
    row = {"prompt": "p", "completion": "c", "label": label}
    if ok:
        assert format_row(row, None, 5)["label"] is label
    else:
        with pytest.raises(ValueError, match=r"^row 5: label must be a bool"):
            format_row(row, None, 5)


def test_numpy_bool_label_is_accepted_without_numpy() -> None:
    bool_ = type("bool_", (), {"__module__": "numpy", "__bool__": lambda self: True})
    assert format_row({"prompt": "p", "completion": "c", "label": bool_()}, None, 0)["label"] is True


def test_errors_are_value_errors_with_index_and_attributes() -> None:
    with pytest.raises(InvalidRowError) as info:
        format_row({"prompt": "p", "completion": [], "label": True}, TOKENIZERS["chatml"], 12)
    assert isinstance(info.value, ValueError)
    assert (info.value.index, info.value.problem) == (12, "completion is empty")
    assert str(info.value) == "row 12: completion is empty"


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="on_invalid"):
        format_rows([], TOKENIZERS["chatml"], on_invalid="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        format_row({"prompt": "p", "completion": "c", "label": True}, None, 0, mode="chat")  # type: ignore[arg-type]


def test_unrenderable_row_is_a_value_error_naming_the_row() -> None:
    class Broken:
        def apply_chat_template(self, *args: Any, **kwargs: Any) -> str:
            raise RuntimeError("template exploded")

    with pytest.raises(ValueError, match=r"^row 4: .*RuntimeError: template exploded"):
        format_row({"prompt": [{"role": "user", "content": "u"}], "completion": "a", "label": True}, Broken(), 4)


# -------------------------------------------------------------------- classify


def _robust(tokenizer: Any) -> Any:
    return lambda row, index: format_row(row, tokenizer, index)


def _legacy(tokenizer: Any) -> Any:
    return lambda row, _index: legacy_format(row, tokenizer)


def test_cases_cover_the_required_boundaries() -> None:
    assert len(CASES) >= 24
    required = {
        "empty_completion", "single_user_message", "kto_mix_single_message", "system_only_prompt",
        "system_user_prompt", "multi_turn_prompt", "multi_message_completion", "consecutive_user_messages",
        "missing_role", "missing_content", "none_content", "content_text_parts", "label_string",
        "unicode_emoji", "very_long_text", "whitespace_only_completion", "tool_call_completion",
        "string_prompt_completion", "missing_label", "missing_completion",
    }  # fmt: skip
    assert required <= set(CASES_BY_ID)
    assert len(CASES_BY_ID["very_long_text"].completion_pieces[0]) >= 20_000
    for case in CASES:
        assert case.invalid == bool(case.reason), case.id
        assert case.invalid or case.prompt_pieces, case.id


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_robust_formatter_passes_every_case(case: Case, name: str) -> None:
    assert classify(case, _robust(TOKENIZERS[name])) == "pass"


@pytest.mark.parametrize(
    ("case_id", "tokenizer", "outcome"),
    [
        # an empty prompt rendered as "" - the silent loss of the original bug
        ("kto_mix_single_message", ChatMLTokenizer(), "wrong"),
        # ... or rejected, as transformers >= 4.45 does
        ("kto_mix_single_message", EmptyRejectingTokenizer(), "error:IndexError"),
        ("kto_mix_single_message", AlternatingTokenizer(), "error:FakeTemplateError"),
        ("legacy_layout_pair", ChatMLTokenizer(), "pass"),
        ("empty_completion", ChatMLTokenizer(), "error:IndexError"),
        ("missing_completion", ChatMLTokenizer(), "error:KeyError"),
        ("none_content", ChatMLTokenizer(), "error:TypeError"),
        ("label_string", ChatMLTokenizer(), "wrong"),  # bad data went through
        ("multi_message_completion", ChatMLTokenizer(), "wrong"),  # early reply turns land in the prompt
        ("string_prompt_completion", ChatMLTokenizer(), "error:TypeError"),  # strings iterate to chars
    ],
)
def test_classify_legacy_outcomes(case_id: str, tokenizer: Any, outcome: str) -> None:
    assert classify(CASES_BY_ID[case_id], _legacy(tokenizer)) == outcome


_VALID = CASES_BY_ID["system_user_prompt"]
_INVALID = CASES_BY_ID["empty_completion"]
_GOOD_OUT = {"prompt": "Answer in one word. Colour of grass?", "completion": "Green.", "label": True}


def _raises(exc: BaseException) -> Any:
    def fn(row: Any, index: int) -> Any:
        raise exc

    return fn


@pytest.mark.parametrize(
    ("case", "fn", "outcome"),
    [
        (_VALID, lambda r, i: _GOOD_OUT, "pass"),
        (_VALID, lambda r, i: {**_GOOD_OUT, "prompt": "Colour of grass?"}, "wrong"),
        (_VALID, lambda r, i: {**_GOOD_OUT, "prompt": "Colour of grass?", "completion": "Answer in one word. Green."}, "wrong"),
        (_VALID, lambda r, i: {**_GOOD_OUT, "label": 1}, "wrong"),
        (_VALID, lambda r, i: {k: v for k, v in _GOOD_OUT.items() if k != "label"}, "wrong"),
        (_VALID, lambda r, i: {**_GOOD_OUT, "completion": ["Green."]}, "wrong"),
        (_VALID, lambda r, i: None, "wrong"),
        (_VALID, _raises(KeyError("x")), "error:KeyError"),
        (_VALID, lambda r, i: (_ for _ in ()).throw(ValueError(f"row {i}: completion is empty")), "error:ValueError"),
        (_INVALID, lambda r, i: {"prompt": "", "completion": "", "label": False}, "wrong"),
        (_INVALID, lambda r, i: (_ for _ in ()).throw(ValueError(f"row {i}: completion is empty")), "pass"),
        (_INVALID, _raises(ValueError("row 7: completion is empty")), "pass"),
        (_INVALID, _raises(ValueError("row 0: completion is empty")), "error:ValueError"),  # wrong index
        (_INVALID, _raises(ValueError("row 7: something else")), "error:ValueError"),  # no reason
        (_INVALID, _raises(ValueError("completion is empty")), "error:ValueError"),  # no row
        (_INVALID, _raises(InvalidRowError(7, "completion is empty")), "pass"),
        (_INVALID, _raises(IndexError("list index out of range")), "error:IndexError"),
    ],
)
def test_classify_rules(case: Case, fn: Any, outcome: str) -> None:
    assert classify(case, fn, index=7) == outcome


def test_classify_whole_catches_garbled_markup() -> None:
    good = {"prompt": "P: Answer in one word. Colour of grass?|", "completion": "Green.|", "label": True}
    assert content_kept(_VALID, good, whole="P: Answer in one word. Colour of grass?|Green.|")
    assert not content_kept(_VALID, good, whole="P: Answer in one word. Colour of grass?|SYSTEM|Green.|")


def test_classify_does_not_let_formatters_mutate_cases() -> None:
    def mutate(row: Any, index: int) -> Any:
        row["prompt"].clear()
        raise ValueError("nope")

    before = repr(CASES_BY_ID["multi_turn_prompt"].row)
    classify(CASES_BY_ID["multi_turn_prompt"], mutate)
    assert repr(CASES_BY_ID["multi_turn_prompt"].row) == before

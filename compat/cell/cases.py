"""Boundary-case KTO rows, and how a formatter's outcome on one is classified.

Plain data and pure Python (host code imports this). Each :class:`Case` is a
row that real KTO datasets contain or that broke the legacy example script,
with the text that must survive formatting - or ``invalid=True`` and the
phrase the robust formatter's ``ValueError`` must contain when it rejects it.

Outcomes follow the result contract: ``pass``, ``error:<ExceptionType>`` or
``wrong`` (output produced but content lost, misplaced or the row was bad).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["CASES", "CASES_BY_ID", "Case", "FormatFn", "classify", "content_kept"]

# fn(row, index) -> formatted row; the index is what a good error names.
FormatFn = Callable[[Mapping[str, Any], int], Mapping[str, Any]]


@dataclass(frozen=True)
class Case:
    """One boundary row and what must hold after formatting it.

    ``prompt_pieces`` must appear in the rendered prompt and
    ``completion_pieces`` in the rendered completion; placement matters, so a
    prompt piece that only reaches the completion counts as lost. For an
    ``invalid`` case ``reason`` is a phrase the rejection must contain.

    ``conversation`` is the (prompt, completion) message lists the row means,
    written out by hand: a template's own rendering of it is the reference a
    formatted row must equal, where the template renders it without losing
    text. It never comes from the formatter under test.
    """

    id: str
    row: Mapping[str, Any] = field(hash=False)
    prompt_pieces: tuple[str, ...] = ()
    completion_pieces: tuple[str, ...] = ()
    invalid: bool = False
    reason: str = ""
    about: str = ""
    conversation: tuple[tuple[Mapping[str, str], ...], tuple[Mapping[str, str], ...]] | None = field(default=None, hash=False)


def _u(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _a(text: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _s(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


_LONG = "".join(f"<{i:05d}>" for i in range(2858))  # 20,006 chars, every window unique
_UNI_PROMPT = "Grüß Gott! Как дела? 你好 🌍🚀 naïve café e\u0301 👩🏽\u200d💻"
_UNI_REPLY = "שלום 👋 مرحبا ✓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🇫🇷"
_WEATHER_CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
_ADD_CALL = {"type": "function", "function": {"name": "add_numbers", "arguments": '{"a": 2, "b": 3}'}}

CASES: tuple[Case, ...] = (
    Case(
        "kto_mix_single_message",
        {"prompt": [_u("What is the capital of France?")], "completion": [_a("Paris is the capital.")], "label": True},
        ("What is the capital of France?",),
        ("Paris is the capital.",),
        about="trl-lib/kto-mix-14k's own shape: a one-message completion; legacy renders an empty prompt",
    ),
    Case(
        "legacy_layout_pair",
        {"completion": [_u("What is 2+2?"), _a("It is 4.")], "label": True},
        ("What is 2+2?",),
        ("It is 4.",),
        about="the layout the old script assumed: the whole conversation in `completion`, no prompt field",
    ),
    Case(
        "legacy_layout_multi_turn",
        {
            "completion": [_u("Hi!"), _a("Hello! How can I help?"), _u("Tell me a joke."), _a("Why did the chicken cross the road?")],
            "label": False,
        },
        ("Hi!", "Hello! How can I help?", "Tell me a joke."),
        ("Why did the chicken cross the road?",),
        about="old layout, several turns: only the final reply is the completion",
    ),
    Case(
        "empty_completion",
        {"prompt": [_u("Hello?")], "completion": [], "label": False},
        invalid=True,
        reason="completion is empty",
        about="legacy indexes completion[-1]: IndexError",
    ),
    Case(
        "single_user_message",
        {"completion": [_u("Hi there, anyone home?")], "label": True},
        invalid=True,
        reason="no assistant reply",
        about="a conversation with one user turn and no reply to learn from",
    ),
    Case(
        "system_only_prompt",
        {"prompt": [_s("You are a pirate. Answer like one.")], "completion": [_a("Arr, matey.")], "label": True},
        ("You are a pirate. Answer like one.",),
        ("Arr, matey.",),
        about="system with no user turn: Llama-2 drops it, Gemma rejects it",
    ),
    Case(
        "system_user_prompt",
        {
            "prompt": [_s("Answer in one word."), _u("Colour of grass?")],
            "completion": [_a("Green.")],
            "label": True,
        },
        ("Answer in one word.", "Colour of grass?"),
        ("Green.",),
        about="system + user: Gemma rejects the system role",
    ),
    Case(
        "multi_turn_prompt",
        {
            "prompt": [_u("Name a fruit."), _a("Apple."), _u("Another one?")],
            "completion": [_a("Banana.")],
            "label": True,
        },
        ("Name a fruit.", "Apple.", "Another one?"),
        ("Banana.",),
    ),
    Case(
        "multi_message_completion",
        {
            "prompt": [_u("Count to three, slowly.")],
            "completion": [_a("One."), _u("Go on."), _a("Two, three.")],
            "label": False,
        },
        ("Count to three, slowly.",),
        ("One.", "Go on.", "Two, three."),
        about="legacy keeps only completion[-1] as the completion",
    ),
    Case(
        "consecutive_user_messages",
        {
            "prompt": [_u("First half of the question,"), _u("and the second half.")],
            "completion": [_a("One answer to both.")],
            "label": True,
        },
        ("First half of the question,", "and the second half."),
        ("One answer to both.",),
        about="alternating templates raise on two user turns in a row",
    ),
    Case(
        "consecutive_assistant_messages",
        {
            "prompt": [_u("Tell me two facts.")],
            "completion": [_a("Fact one: water is wet."), _a("Fact two: fire is hot.")],
            "label": True,
        },
        ("Tell me two facts.",),
        ("Fact one: water is wet.", "Fact two: fire is hot."),
    ),
    Case(
        "missing_role",
        {"prompt": [{"content": "Where is my role?"}], "completion": [_a("Lost.")], "label": False},
        invalid=True,
        reason="has no 'role'",
        about="legacy ignores the prompt field, so the bad message goes unnoticed",
    ),
    Case(
        "missing_content",
        {"prompt": [_u("Say something.")], "completion": [{"role": "assistant"}], "label": False},
        invalid=True,
        reason="has no 'content'",
    ),
    Case(
        "none_content",
        {"prompt": [_u("Say something.")], "completion": [_a(None)], "label": False},
        invalid=True,
        reason="content is None",
    ),
    Case(
        "content_text_parts",
        {
            "prompt": [{"role": "user", "content": [{"type": "text", "text": "Describe "}, {"type": "text", "text": "the picture."}]}],
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": "A cat on a mat."}]}],
            "label": True,
        },
        ("Describe the picture.",),
        ("A cat on a mat.",),
        about="OpenAI/multimodal style content: a list of text parts",
    ),
    Case(
        "non_text_content_part",
        {
            "prompt": [{"role": "user", "content": [{"type": "image", "url": "cat.png"}, {"type": "text", "text": "What is it?"}]}],
            "completion": [_a("A cat.")],
            "label": True,
        },
        invalid=True,
        reason="only 'text' parts",
    ),
    Case(
        "label_string",
        {"prompt": [_u("Is the sky green?")], "completion": [_a("Yes.")], "label": "false"},
        invalid=True,
        reason="label must be a bool",
        about='bool("false") is True: a string label silently flips',
    ),
    Case(
        "label_int",
        {"prompt": "Is 2 prime?", "completion": " Yes.", "label": 1},
        invalid=True,
        reason="label must be a bool",
    ),
    Case(
        "unicode_emoji",
        {"prompt": [_u(_UNI_PROMPT)], "completion": [_a(_UNI_REPLY)], "label": True},
        (_UNI_PROMPT,),
        (_UNI_REPLY,),
    ),
    Case(
        "very_long_text",
        {"prompt": [_u("Repeat the sequence.")], "completion": [_a(_LONG)], "label": False},
        ("Repeat the sequence.",),
        (_LONG,),
        about="20k characters: nothing may truncate at format time",
    ),
    Case(
        "whitespace_only_completion",
        {"prompt": [_u("Reply with blank space only.")], "completion": [_a("   \n\t  ")], "label": False},
        ("Reply with blank space only.",),
        (),
        about="kept as-is (not 'empty'); templates that trim (Gemma) may still render it as nothing",
    ),
    Case(
        "tool_call_completion",
        {
            "prompt": [_u("What's the weather in Paris?")],
            "completion": [
                {"role": "assistant", "content": None, "tool_calls": [_WEATHER_CALL]},
                {"role": "tool", "name": "get_weather", "content": "18°C and sunny"},
                _a("It is 18°C and sunny in Paris."),
            ],
            "label": True,
        },
        ("What's the weather in Paris?",),
        ("get_weather", '"city": "Paris"', "18°C and sunny", "It is 18°C and sunny in Paris."),
        about="assistant tool call with content None, then a tool result",
    ),
    Case(
        "tool_result_in_prompt",
        {
            "prompt": [
                _u("Add 2 and 3."),
                {"role": "assistant", "content": "", "tool_calls": [_ADD_CALL]},
                {"role": "tool", "content": "sum=5"},
            ],
            "completion": [_a("2 + 3 = 5.")],
            "label": True,
        },
        ("Add 2 and 3.", "add_numbers", "sum=5"),
        ("2 + 3 = 5.",),
        about="the prompt ends with a tool result; Llama-2/Gemma reject the tool role, Zephyr drops it",
    ),
    Case(
        "string_prompt_completion",
        {"prompt": "Q: What is 3*3?\nA:", "completion": " 9", "label": True},
        ("Q: What is 3*3?\nA:",),
        (" 9",),
        about="standard (non-conversational) format; legacy passed strings to apply_chat_template",
    ),
    Case(
        "string_prompt_list_completion",
        {"prompt": "Name a colour.", "completion": [_a("Teal.")], "label": True},
        ("Name a colour.",),
        ("Teal.",),
    ),
    Case(
        "sharegpt_roles",
        {"prompt": [{"role": "human", "content": "Hi!"}], "completion": [{"role": "gpt", "content": "Hello!"}], "label": True},
        invalid=True,
        reason="unknown role",
        about="ShareGPT role names left unmapped",
    ),
    Case(
        "missing_label",
        {"prompt": [_u("Unlabelled?")], "completion": [_a("Yes.")]},
        invalid=True,
        reason="missing field 'label'",
    ),
    Case(
        "missing_completion",
        {"prompt": [_u("Where is the answer?")], "label": True},
        invalid=True,
        reason="missing field 'completion'",
    ),
    Case(
        "missing_prompt",
        {"completion": [_a("An answer to nothing.")], "label": False},
        invalid=True,
        reason="missing field 'prompt'",
    ),
    Case(
        "user_system_prompt",
        {"prompt": [_u("Translate to French: cat"), _s("Answer in lowercase.")], "completion": [_a("chat")], "label": True},
        ("Translate to French: cat", "Answer in lowercase."),
        ("chat",),
        about="[user, system]: TRL refuses a prompt whose last turn is system",
    ),
    Case(
        "explicit_empty_prompt",
        {"prompt": [], "completion": [_u("Name a planet."), _a("Mars.")], "label": True},
        ("Name a planet.",),
        ("Mars.",),
        about="prompt: [] with the conversation in completion (the legacy layout, made explicit)",
    ),
    Case(
        "sharegpt_from_value",
        {"prompt": [{"from": "human", "value": "Hello there."}], "completion": [{"from": "gpt", "value": "General Kenobi."}],
         "label": True},
        ("Hello there.",),
        ("General Kenobi.",),
        about="ShareGPT messages: from/value keys, human/gpt roles",
    ),
    Case(
        "prompt_ends_on_assistant",
        {"prompt": [_u("Start a story."), _a("Once upon a time")], "completion": [_a(", there was a cat.")], "label": True},
        invalid=True,
        reason="prompt ends with an assistant turn",
        about="the completion would continue the prompt's reply instead of answering the user",
    ),
    Case(
        "tool_result_last",
        {"prompt": [_u("What time is it?"), {"role": "tool", "content": "12:00"}], "completion": [_a("It is noon.")],
         "label": True},
        ("What time is it?", "12:00"),
        ("It is noon.",),
        about="the prompt ends on a tool result; ChatML accepts it, TRL 0.23's templating refuses it",
    ),
    Case(
        "whitespace_padded",
        {"prompt": [_u("   "), _u("  What is 1+1?  ")], "completion": [_a("\n  Two.  \n")], "label": False},
        ("What is 1+1?",),
        ("Two.",),
        about="a whitespace-only turn beside real text, padding kept around it",
    ),
)


def _c(prompt: list[dict[str, Any]], completion: list[dict[str, Any]]) -> tuple[tuple[Mapping[str, str], ...], tuple[Mapping[str, str], ...]]:
    return tuple(prompt), tuple(completion)


_WEATHER_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
_ADD_TEXT = '<tool_call>\n{"name": "add_numbers", "arguments": {"a": 2, "b": 3}}\n</tool_call>'

# What each valid conversational row means, as (prompt, completion) messages: merged
# runs, a trailing system turn as a user turn, tool calls as text. Written by hand.
_MEANT: dict[str, tuple[tuple[Mapping[str, str], ...], tuple[Mapping[str, str], ...]]] = {
    "kto_mix_single_message": _c([_u("What is the capital of France?")], [_a("Paris is the capital.")]),
    "legacy_layout_pair": _c([_u("What is 2+2?")], [_a("It is 4.")]),
    "legacy_layout_multi_turn": _c([_u("Hi!"), _a("Hello! How can I help?"), _u("Tell me a joke.")],
                                   [_a("Why did the chicken cross the road?")]),
    "system_only_prompt": _c([_u("You are a pirate. Answer like one.")], [_a("Arr, matey.")]),
    "system_user_prompt": _c([_s("Answer in one word."), _u("Colour of grass?")], [_a("Green.")]),
    "multi_turn_prompt": _c([_u("Name a fruit."), _a("Apple."), _u("Another one?")], [_a("Banana.")]),
    "multi_message_completion": _c([_u("Count to three, slowly.")], [_a("One."), _u("Go on."), _a("Two, three.")]),
    "consecutive_user_messages": _c([_u("First half of the question,\n\nand the second half.")], [_a("One answer to both.")]),
    "consecutive_assistant_messages": _c([_u("Tell me two facts.")], [_a("Fact one: water is wet.\n\nFact two: fire is hot.")]),
    "content_text_parts": _c([_u("Describe the picture.")], [_a("A cat on a mat.")]),
    "unicode_emoji": _c([_u(_UNI_PROMPT)], [_a(_UNI_REPLY)]),
    "very_long_text": _c([_u("Repeat the sequence.")], [_a(_LONG)]),
    "whitespace_only_completion": _c([_u("Reply with blank space only.")], [_a("   \n\t  ")]),
    "tool_call_completion": _c([_u("What's the weather in Paris?")],
                               [_a(_WEATHER_TEXT), {"role": "tool", "content": "18°C and sunny"}, _a("It is 18°C and sunny in Paris.")]),
    "tool_result_in_prompt": _c([_u("Add 2 and 3."), _a(_ADD_TEXT), {"role": "tool", "content": "sum=5"}], [_a("2 + 3 = 5.")]),
    "string_prompt_list_completion": _c([_u("Name a colour.")], [_a("Teal.")]),
    "user_system_prompt": _c([_u("Translate to French: cat\n\nAnswer in lowercase.")], [_a("chat")]),
    "explicit_empty_prompt": _c([_u("Name a planet.")], [_a("Mars.")]),
    "sharegpt_from_value": _c([_u("Hello there.")], [_a("General Kenobi.")]),
    "tool_result_last": _c([_u("What time is it?"), {"role": "tool", "content": "12:00"}], [_a("It is noon.")]),
    "whitespace_padded": _c([_u("   \n\n  What is 1+1?  ")], [_a("\n  Two.  \n")]),
}
CASES = tuple(replace(c, conversation=_MEANT[c.id]) if c.id in _MEANT else c for c in CASES)

CASES_BY_ID: dict[str, Case] = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "case ids must be unique"


def content_kept(case: Case, out: Any, whole: str | None = None) -> bool:
    """Whether a formatted text row keeps the case's pieces in their places
    and its label unchanged (a flipped or dropped label is lost content too).

    ``whole``, when known, is the training string the template gives the
    conversation (prompt with generation prompt, then the reply); prompt +
    completion must equal it, which catches markup garbled between the two
    halves (e.g. a default system turn injected into the completion).
    """
    if not isinstance(out, Mapping):
        return False
    prompt, completion = out.get("prompt"), out.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        return False
    label = case.row.get("label")
    if "label" not in out or out["label"] is not label:
        return False
    if whole is not None and prompt + completion != whole:
        return False
    return all(p in prompt for p in case.prompt_pieces) and all(c in completion for c in case.completion_pieces)


def _names_row(exc: BaseException, index: int) -> bool:
    return re.search(rf"\brow {index}\b", str(exc)) is not None


def classify(case: Case, fn: FormatFn, index: int = 7, whole: str | None = None) -> str:
    """``pass`` / ``error:<Type>`` / ``wrong`` for ``fn`` on ``case``.

    Rejecting an invalid case counts as ``pass`` only with a ``ValueError``
    that names the row (``row <index>``) and the problem; any other exception
    is ``error:<Type>``. Output for an invalid case is ``wrong`` (bad data went
    through), as is output that lost or misplaced an expected piece. A
    non-zero default ``index`` catches formatters that ignore it. ``whole``:
    see :func:`content_kept`.
    """
    row = copy.deepcopy(dict(case.row))
    try:
        out = fn(row, index)
    except Exception as exc:
        if case.invalid and isinstance(exc, ValueError) and _names_row(exc, index) and case.reason.lower() in str(exc).lower():
            return "pass"
        return f"error:{type(exc).__name__}"
    if case.invalid:
        return "wrong"
    return "pass" if content_kept(case, out, whole) else "wrong"

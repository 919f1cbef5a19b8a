"""Conversations -> KTO rows: the legacy formatter, and one that keeps content.

Cell code that host code may also import: nothing here imports trl,
transformers or torch. The only ML object used is the tokenizer passed in, and
only through ``tokenizer.apply_chat_template(messages, tokenize=False, ...)``.

``format_row`` replaces the old KTO example script's ``format_dataset``
(reproduced in compat/cell/legacy.py so cells can measure how it fails): it
validates a row, keeps every piece of text, and raises ``ValueError`` - never
anything else - naming the row and the problem when a row cannot be used.

Rules of the robust formatter (``normalize_row`` and ``format_row``):

* ``prompt`` is a string or a message list; ``completion`` is a string or a
  message list. Both strings: a standard-format row, passed through untouched
  in both modes (trainers never template those). Otherwise strings become a
  ``user`` / ``assistant`` message and the row is conversational.
* The ``prompt`` field is used. Messages that lead the completion before its
  first ``assistant`` turn are context: they are appended to the prompt. With
  no prompt (missing, ``None`` or empty: the legacy layout, where the whole
  conversation lived in ``completion``) the final assistant reply is the
  completion and everything before it the prompt, as the old script meant.
* Content is a string or a list of ``{"type": "text", "text": str}`` parts
  (joined with no separator, as HF templates concatenate parts). ``None``
  content is allowed only on an assistant message carrying ``tool_calls``;
  tool calls are written into the content as ``<tool_call>{json}</tool_call>``
  text so no template can drop them.
* Roles are ``system``, ``user``, ``assistant``, ``tool``. ShareGPT messages
  (``{"from": "human"|"gpt"|"system"|"tool", "value": ...}``) are read as
  the same roles; ``human``/``gpt`` under a ``role`` key are an error (a
  half-converted dataset). Consecutive messages of one role are merged
  (joined by a blank line) so templates that enforce alternation accept them
  and nothing is lost.
* ``label`` must be a real ``bool``: ``1``/``0``/``"true"``/``"false"`` are
  rejected, because ``bool("false")`` is ``True`` and a silently flipped
  label is worse than an error.
* Whitespace-only, very long and non-ASCII text is kept byte for byte.
* Template-dependent repairs happen only when the template refuses the
  conversation or drops content (detected by rendering, never by template
  name): ``tool`` messages become user-side messages, then ``system``
  messages are folded into the first user turn. In ``conversational`` mode
  the same repairs also apply when the trainer's own templating would refuse
  the prompt's last role (``prompt_roles``, measured per pair).
* ``text`` mode renders like TRL's own ``maybe_apply_chat_template``: the
  prompt with ``add_generation_prompt=True``, the completion as what the full
  conversation adds after that prefix. ``prompt + completion`` is therefore
  exactly the templated conversation, end-of-turn markup included, which is
  what the model must learn to produce and stop on. Where the two renderings
  disagree the split is at their common prefix (as recent TRL does); if that
  cuts prompt text off, the row is rejected.
* A prompt ends with a user or tool turn: a trailing system message becomes
  a user turn (newer TRL raises on it) and a trailing assistant turn is an
  error (the completion would not be a reply).
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ROLES",
    "InvalidRowError",
    "Mode",
    "format_row",
    "format_rows",
    "normalize_row",
    "render_conversational",
]

ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
Mode = Literal["text", "conversational"]
Message = dict[str, str]

_MERGE_SEPARATOR = "\n\n"
_TOOL_OUTPUT_PREFIX = "Tool output:\n"


class InvalidRowError(ValueError):
    """A row the robust formatter cannot use; the message starts ``row N:``.

    A ``ValueError`` subclass so callers can catch the documented type while
    the index and problem stay available as attributes.
    """

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"row {index}: {problem}")
        self.index = index
        self.problem = problem


# ------------------------------------------------------------------ normalisation


def _type_name(value: Any) -> str:
    return type(value).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40


def _short(value: Any) -> str:
    """A bounded repr for error messages: safe on huge or deeply nested values."""
    try:
        return _REPR.repr(value)
    except Exception:  # a hostile __repr__ must not turn a ValueError into something else
        return f"<{_type_name(value)}>"


def _is_bool(value: Any) -> bool:
    """``bool`` or ``numpy.bool_`` (what datasets hands back), without importing numpy."""
    if isinstance(value, bool):
        return True
    cls = type(value)
    return cls.__name__ in {"bool_", "bool"} and cls.__module__ == "numpy"


def _text_of(content: Any, where: str, index: int) -> str:
    """Content as one string: a string, or text parts joined with no separator."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts: list[str] = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping):
                raise InvalidRowError(index, f"{where} content part {j} is a {_type_name(part)}, expected a text part")
            if part.get("type") != "text":
                raise InvalidRowError(index, f"{where} content part {j} has type {_short(part.get('type'))}; only 'text' parts are supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRowError(index, f"{where} content part {j} text is {_type_name(text)}, expected str")
            texts.append(text)
        return "".join(texts)
    raise InvalidRowError(index, f"{where} content is {_type_name(content)}, expected a string or a list of text parts")


def _tool_calls_text(calls: Any, where: str, index: int) -> str:
    """Tool calls as ``<tool_call>{json}</tool_call>`` lines (Hermes/Qwen style)."""
    if not isinstance(calls, (list, tuple)):
        raise InvalidRowError(index, f"{where} tool_calls is a {_type_name(calls)}, expected a list")
    lines: list[str] = []
    for j, call in enumerate(calls):
        if not isinstance(call, Mapping):
            raise InvalidRowError(index, f"{where} tool call {j} is a {_type_name(call)}, expected a mapping")
        function = call.get("function", call)
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str) or not function.get("name"):
            raise InvalidRowError(index, f"{where} tool call {j} has no function name")
        arguments = function.get("arguments", {})
        try:
            name = json.dumps(function["name"], ensure_ascii=False)
            # String arguments are already JSON text (OpenAI style): embed them verbatim.
            args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidRowError(index, f"{where} tool call {j} arguments are not JSON-serialisable ({exc})") from None
        lines.append(f'<tool_call>\n{{"name": {name}, "arguments": {args}}}\n</tool_call>')
    return "\n".join(lines)


_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "tool": "tool"}


def _message(raw: Any, where: str, index: int) -> Message:
    """One validated message reduced to ``{"role", "content"}`` strings."""
    if not isinstance(raw, Mapping):
        raise InvalidRowError(index, f"{where} is a {_type_name(raw)}, expected a mapping with 'role' and 'content'")
    if "role" not in raw and "from" in raw:  # ShareGPT
        speaker = raw["from"]
        if not isinstance(speaker, str) or speaker not in _SHAREGPT_ROLES:
            raise InvalidRowError(index, f"{where} has unknown ShareGPT speaker {_short(speaker)} "
                                         f"(expected one of {', '.join(sorted(_SHAREGPT_ROLES))})")
        raw = {"role": _SHAREGPT_ROLES[speaker], "content": raw.get("value")}
    if "role" not in raw:
        raise InvalidRowError(index, f"{where} has no 'role'")
    role = raw["role"]
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRowError(index, f"{where} has unknown role {_short(role)} (expected one of {', '.join(sorted(ROLES))})")
    calls = raw.get("tool_calls")
    # None or [] on every message is common in exported chats: it means no calls.
    has_calls = bool(calls) if isinstance(calls, (list, tuple)) else calls is not None
    if has_calls and role != "assistant":
        raise InvalidRowError(index, f"{where} is a {role} message with tool_calls; only assistant messages may call tools")
    content = raw.get("content")
    if content is None:
        if not has_calls:
            problem = "has no 'content'" if "content" not in raw else "content is None"
            raise InvalidRowError(index, f"{where} {problem}")
        text = ""
    else:
        text = _text_of(content, where, index)
    if has_calls:
        calls_text = _tool_calls_text(calls, where, index)
        text = f"{text}\n{calls_text}" if text else calls_text
    return {"role": role, "content": text}


def _messages(value: Any, field: str, index: int) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user" if field == "prompt" else "assistant", "content": value}]
    if not isinstance(value, (list, tuple)):
        raise InvalidRowError(index, f"{field} is a {_type_name(value)}, expected a string or a list of messages")
    return [_message(raw, f"{field} message {j}", index) for j, raw in enumerate(value)]


def _merge_runs(messages: Sequence[Message]) -> list[Message]:
    """Join consecutive same-role messages so alternating templates accept them."""
    merged: list[Message] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + _MERGE_SEPARATOR + message["content"]}
        else:
            merged.append(dict(message))
    return merged


def _is_empty(value: str | list[Message]) -> bool:
    if isinstance(value, str):
        return value == ""
    return all(m["content"] == "" for m in value)


def normalize_row(row: Any, index: int) -> dict[str, Any]:
    """Validate ``row`` and return ``{"prompt", "completion", "label"}``.

    Prompt and completion are both strings (a standard-format row) or both
    lists of ``{"role", "content"}`` string messages, the completion starting
    with the assistant's reply. Raises :class:`InvalidRowError` (a
    ``ValueError``) saying what is wrong; never any other exception.
    """
    if not isinstance(row, Mapping):
        raise InvalidRowError(index, f"expected a mapping with prompt/completion/label, got {_type_name(row)}")
    for field in ("completion", "label"):
        if field not in row:
            raise InvalidRowError(index, f"missing field {field!r}")
    label = row["label"]
    if not _is_bool(label):
        raise InvalidRowError(index, f"label must be a bool, got {_type_name(label)} {_short(label)}")
    prompt_raw = row.get("prompt")
    completion_raw = row["completion"]
    if completion_raw is None:
        raise InvalidRowError(index, "completion is None")
    if isinstance(completion_raw, str) and isinstance(prompt_raw, str):
        if completion_raw == "":
            raise InvalidRowError(index, "completion is empty")
        if prompt_raw == "":
            raise InvalidRowError(index, "prompt is empty")
        return {"prompt": prompt_raw, "completion": completion_raw, "label": bool(label)}

    no_prompt = prompt_raw is None or (isinstance(prompt_raw, (str, list, tuple)) and len(prompt_raw) == 0)
    prompt = [] if no_prompt else _messages(prompt_raw, "prompt", index)
    completion = _messages(completion_raw, "completion", index)
    if not completion:
        raise InvalidRowError(index, "completion is empty")
    replies = [j for j, m in enumerate(completion) if m["role"] == "assistant"]
    if not replies:
        raise InvalidRowError(index, "completion has no assistant reply")
    if no_prompt:
        # Legacy layout (the whole conversation in `completion`): as the old
        # script meant it, the final reply is the completion - but a run of
        # assistant messages at the end stays whole instead of being cut.
        start = replies[-1]
        while start > 0 and completion[start - 1]["role"] == "assistant":
            start -= 1
    else:
        # Explicit prompt: the completion is what was labelled, from its first
        # reply on; turns before that reply are context and join the prompt.
        start = replies[0]
    prompt, completion = prompt + completion[:start], completion[start:]
    if prompt and prompt[-1]["role"] == "system":
        # TRL's own templating raises "Invalid role in the last message" on a
        # prompt ending in a system turn; as a user turn it loses nothing.
        prompt[-1] = {"role": "user", "content": prompt[-1]["content"]}
    prompt, completion = _merge_runs(prompt), _merge_runs(completion)
    if _is_empty(completion):
        raise InvalidRowError(index, "completion is empty (its messages hold no text)")
    if not prompt:
        problem = "missing field 'prompt'" if "prompt" not in row else "prompt is empty"
        raise InvalidRowError(index, f"{problem} and the completion has no turns before the reply")
    if _is_empty(prompt):
        raise InvalidRowError(index, "prompt is empty (its messages hold no text)")
    if prompt[-1]["role"] == "assistant":
        raise InvalidRowError(index, "prompt ends with an assistant turn, so the completion is not a reply to it")
    return {"prompt": prompt, "completion": completion, "label": bool(label)}


# -------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Rendered:
    prompt: str
    completion: str


def _render(tokenizer: Any, messages: list[Message], add_generation_prompt: bool) -> str:
    out = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    if not isinstance(out, str):
        raise TypeError(f"apply_chat_template returned {_type_name(out)}, expected str")
    return out


def _split_render(tokenizer: Any, prompt: list[Message], completion: list[Message]) -> _Rendered:
    """Render like TRL does: the prompt with a generation prompt, the completion
    as what the full conversation adds after it, so prompt + completion is
    exactly the templated conversation (end-of-turn tokens included)."""
    prompt_text = _render(tokenizer, prompt, add_generation_prompt=True)
    full_text = _render(tokenizer, prompt + completion, add_generation_prompt=False)
    # Some templates render the generation prompt differently from the start
    # of a real reply (DeepSeek-R1); split at the common prefix, as TRL does.
    # The content check afterwards rejects a split that cuts into the prompt.
    cut = next((i for i, (a, b) in enumerate(zip(prompt_text, full_text, strict=False)) if a != b), min(len(prompt_text), len(full_text)))
    return _Rendered(full_text[:cut], full_text[cut:])


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    except Exception:
        return ""


def _lost(messages: list[Message], text: str) -> str | None:
    """The first message whose text is missing from ``text`` (strip-tolerant:
    templates may trim)."""
    for message in messages:
        piece = message["content"].strip()
        if piece and piece not in text:
            return f"{message['role']} content {piece[:40]!r}"
    return None


_PROBE = "kto-compat-probe-{}"


def _dropped(tokenizer: Any, prompt: list[Message], completion: list[Message]) -> str | None:
    """A message the template drops whole. Content checks cannot see this for
    whitespace-only text (trimming templates legitimately remove it), so render
    the same roles with a unique marker per message and look for each marker."""
    n = len(prompt)
    marked = [{"role": m["role"], "content": _PROBE.format(i)} for i, m in enumerate(prompt + completion)]
    try:
        rendered = _split_render(tokenizer, marked[:n], marked[n:])
    except Exception:  # noqa: BLE001 - the real render succeeded; an odd probe failure proves nothing
        return None
    for i, m in enumerate(prompt + completion):
        side = rendered.prompt if i < n else rendered.completion
        if _PROBE.format(i) not in side:
            return f"the whole {m['role']} message {i}"
    return None


def _retag(messages: list[Message], role: str, new_role: str, prefix: str = "") -> list[Message]:
    return _merge_runs(
        [{"role": new_role, "content": prefix + m["content"]} if m["role"] == role else m for m in messages]
    )


def _repairs(prompt: list[Message], completion: list[Message]) -> Iterator[tuple[list[Message], list[Message]]]:
    """Candidate conversations, least changed first: as given, tool turns as
    user turns, then system folded into the first user turn as well."""
    yield prompt, completion
    roles = {m["role"] for m in prompt + completion}
    if "tool" in roles:
        prompt = _retag(prompt, "tool", "user", _TOOL_OUTPUT_PREFIX)
        completion = _retag(completion, "tool", "user", _TOOL_OUTPUT_PREFIX)
        yield prompt, completion
    if "system" in roles:
        yield _retag(prompt, "system", "user"), _retag(completion, "system", "user")


def _fit_template(
    tokenizer: Any, prompt: list[Message], completion: list[Message], index: int,
    prompt_roles: frozenset[str] | None = None,
) -> tuple[list[Message], list[Message], _Rendered]:
    """The least-changed conversation the template renders without losing text
    (and, given ``prompt_roles``, whose prompt ends on a role the trainer takes)."""
    problems: list[str] = []
    for p, c in _repairs(prompt, completion):
        if prompt_roles is not None and p[-1]["role"] not in prompt_roles:
            problems.append(f"this TRL refuses a prompt whose last turn is {p[-1]['role']}")
            continue
        try:
            rendered = _split_render(tokenizer, p, c)
        except Exception as exc:  # the template's own errors: jinja, TypeError, IndexError, ...
            problems.append(f"{_type_name(exc)}: {_message_of(exc)}")
            continue
        lost = _lost(p, rendered.prompt) or _lost(c, rendered.completion) or _dropped(tokenizer, p, c)
        if lost is None:
            return p, c, rendered
        problems.append(f"the template drops {lost}")
    raise InvalidRowError(index, f"the chat template cannot render this conversation acceptably ({problems[-1]})")


def format_row(row: Any, tokenizer: Any, index: int = 0, mode: Mode = "text",
               prompt_roles: frozenset[str] | None = None) -> dict[str, Any]:
    """One KTO row: ``text`` mode renders strings with the tokenizer's chat
    template; ``conversational`` mode returns message lists (checked to render)
    for trainers that apply the template themselves, their prompt ending on a
    role in ``prompt_roles`` (default: ``user`` only, which every TRL takes).

    Raises :class:`InvalidRowError` (``ValueError``) for any unusable row.
    """
    if mode not in ("text", "conversational"):
        raise ValueError(f"mode must be 'text' or 'conversational', got {mode!r}")
    row = normalize_row(row, index)
    label = row["label"]
    if isinstance(row["prompt"], str):
        # Standard format: trainers never template it, in either mode.
        return row
    roles = None if mode == "text" else (prompt_roles if prompt_roles is not None else frozenset({"user"}))
    prompt, completion, rendered = _fit_template(tokenizer, row["prompt"], row["completion"], index, roles)
    if mode == "text":
        return {"prompt": rendered.prompt, "completion": rendered.completion, "label": label}
    return {"prompt": prompt, "completion": completion, "label": label}


def format_rows(
    rows: Iterable[Any],
    tokenizer: Any,
    on_invalid: Literal["raise", "drop"] = "raise",
    mode: Mode = "text",
    prompt_roles: frozenset[str] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Format every row; with ``on_invalid="drop"`` skip unusable rows and
    return how many were dropped, otherwise the first one raises."""
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    out: list[dict[str, Any]] = []
    dropped = 0
    for index, row in enumerate(rows):
        try:
            out.append(format_row(row, tokenizer, index, mode, prompt_roles))
        except ValueError:
            if on_invalid == "raise":
                raise
            dropped += 1
    return out, dropped


def render_conversational(row: Mapping[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Template a conversational row the way TRL's trainers do (prompt with a
    generation prompt; completion = what the full conversation adds), so its
    content can be checked like a ``text`` row. Standard rows pass through."""
    if isinstance(row["prompt"], str):
        return dict(row)
    prompt = list(row["prompt"])
    rendered = _split_render(tokenizer, prompt, list(row["completion"]))
    return {"prompt": rendered.prompt, "completion": rendered.completion, "label": row["label"]}


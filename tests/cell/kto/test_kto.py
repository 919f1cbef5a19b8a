"""In-cell KTO measurements: the shared checks (import, keyword, training) plus
what the adapter needs to know about this pair's KTOTrainer: whether it
templates conversational rows itself, which roles may end a prompt, and which
renamed or removed KTOConfig fields it has.

Runs inside one TRL/transformers pair. Every answer is measured on the
installed packages - no version checks - and recorded through ``observe``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from common import (  # noqa: F401 - collected here
    test_deprecation_emitter,
    test_import,
    test_keyword_probe,
    test_platform,
    test_training,
)

from compat.cell import runs
from compat.cell.config_names import CONFIG_RENAMES, CONFIG_WATCH
from compat.cell.templates import CHATML
from compat.cell.trace import first_line
from compat.trainers import TrainerSpec

STAGE = "construct"
# ChatML turn start (the tiny tokenizer's template): present in a prompt only if it was templated.
MARKER = "<|im_start|>"
# Roomy limits: the byte-level tokenizer spends one id per byte, and a truncated
# prompt would read as "content lost" when the trainer did template it.
ROOMY = {"max_length": 256, "max_prompt_length": 128, "max_completion_length": 128}
PROMPT_ROLES = ("user", "tool", "assistant", "system")


def prompt_ids_column(columns: list[str]) -> str | None:
    """The tokenized-prompt column, whatever this TRL calls it (prompt_input_ids, prompt_ids)."""
    return next((c for c in columns if re.fullmatch(r"prompt_(?:input_)?ids", c)), None)


def templating_evidence(trainer: Any, tok: Any, content: str) -> tuple[str, str]:
    """(format_mode, why) from the trainer's own tokenized dataset.

    The decoded prompt ids must hold both the template's turn marker and the
    prompt's text: markers without text (lost content) or text without markers
    (``str(list)`` tokenized, or no templating) both mean the trainer does not
    do the templating, so scripts must hand it pre-rendered text.
    """
    dataset = trainer.train_dataset
    column = prompt_ids_column(list(dataset.column_names))
    if column is None:
        return "text", f"no tokenized prompt column among {dataset.column_names}"
    decoded = tok.decode([i for i in dataset[0][column] if i >= 0], skip_special_tokens=False)
    if MARKER in decoded and content in decoded:
        return "conversational", f"{column} decodes to {decoded[:120]!r}"
    return "text", f"{column} lacks {'the template markers' if MARKER not in decoded else 'the prompt text'}: {decoded[:120]!r}"


@pytest.mark.stage("format")
def test_format_mode(disc: Any, construction: Any, spec: TrainerSpec, tokenizer: Any, tmp_path: Path,
                     observe: Any) -> None:
    """Does this pair's KTOTrainer template conversational rows itself? Measured, not looked up.

    ``conversational``: message-list rows may be given as they are; ``text``:
    the trainer needs rows rendered to text beforehand (it raised, or its
    tokenized prompt lacks the template or the text). The adapter reads this.
    """
    from datasets import Dataset

    keyword = construction.trained_with
    if keyword is None:
        pytest.skip("no trainer was built (recorded by test_keyword_probe)")
    rows = spec.rows(8, True)
    content = rows[0]["prompt"][0]["content"]
    with runs.capture():  # construction chatter is recorded by the keyword probe
        try:
            trainer = runs.build(spec, disc, keyword, tokenizer, Dataset.from_list(rows), tmp_path, **ROOMY)
        except Exception as exc:  # refusing message lists is the measurement
            mode, why = "text", f"construction raised {first_line(exc)[:200]}"
        else:
            mode, why = templating_evidence(trainer, tokenizer, content)
            if mode == "conversational":  # one templated row is not a mode: every row must be templated
                data = trainer.train_dataset
                column = prompt_ids_column(list(data.column_names))
                plain = [i for i in range(len(data))
                         if MARKER not in tokenizer.decode([t for t in data[i][column] if t >= 0])]
                assert not plain, f"the trainer templated row 0 but not rows {plain}"
    observe.probe("format_mode", mode)
    observe.set("format_mode_evidence", why)


@pytest.mark.stage("format")
def test_prompt_roles(disc: Any, tokenizer: Any, observe: Any) -> None:
    """Which roles TRL's own templating accepts as a prompt's last turn (0.23 refuses ``tool``).

    The adapter reads this to repair rows this TRL would refuse instead of
    handing them over. Measured with the installed ``maybe_apply_chat_template``,
    the function KTOTrainer maps over conversational rows.
    """
    try:
        from trl.data_utils import maybe_apply_chat_template
    except ImportError:
        observe.set("prompt_roles_evidence", "trl.data_utils.maybe_apply_chat_template does not exist here")
        return
    accepted = []
    for role in PROMPT_ROLES:
        prompt = [{"role": "user", "content": "Hi."}] + ([{"role": role, "content": "Last turn."}] if role != "user" else [])
        row = {"prompt": prompt, "completion": [{"role": "assistant", "content": "Reply."}], "label": True}
        try:
            maybe_apply_chat_template(row, tokenizer)
        except Exception:  # noqa: BLE001 - refusing the role is the measurement
            continue
        accepted.append(role)
    observe.probe("prompt_roles", ",".join(sorted(accepted)))
    # A prompt ending with the user is the plain case: refusing it means the probe itself is broken.
    assert "user" in accepted, "maybe_apply_chat_template refused a prompt whose last turn is the user's"


@pytest.mark.stage("construct")
def test_batch_size_one(disc: Any, construction: Any, spec: TrainerSpec, tokenizer: Any, train_dataset: Any,
                        tmp_path: Path, observe: Any) -> None:
    """Does KTOTrainer take per_device_train_batch_size=1 with its default loss? Memory advice that
    recommends batch 1 plus accumulation rests on this measurement, never on release notes."""
    keyword = construction.trained_with
    if keyword is None:
        pytest.skip("no trainer was built (recorded by test_keyword_probe)")
    with runs.capture():
        try:
            runs.build(spec, disc, keyword, tokenizer, train_dataset, tmp_path, per_device_train_batch_size=1)
        except ValueError as exc:
            if "batch size" not in str(exc).lower():
                raise  # some other refusal: the measurement failed, not the probe
            observe.set("batch_size_one_error", first_line(exc))
            state = "rejected"
        else:
            state = "accepted"
    observe.probe("batch_size_one", state)


def test_config_fields(disc: Any, observe: Any) -> None:
    """The renamed and removed KTOConfig fields the adapter knows, as this pair's KTOConfig has them."""
    fields = {f.name for f in dataclasses.fields(disc.config) if f.init}
    observe.probe("config_fields", ",".join(sorted(n for n in CONFIG_WATCH if n in fields)))
    # The adapter renames each pair to the name this KTOConfig has: it must have one of the two.
    missing = [pair for pair in CONFIG_RENAMES if not fields & set(pair)]
    assert not missing, f"KTOConfig has neither name of {missing}: the adapter's renames cannot apply"


def test_lm_head(disc: Any, observe: Any) -> None:
    """Does this KTOTrainer compute log-probs through TRL's fused, chunked LM head? (`kto-compat memory`
    names the releases that do.) Read from the trainer's own module, which imports the helper it calls."""
    import sys

    module = sys.modules[disc.trainer.__module__]
    fused = callable(getattr(module, "add_fused_lm_head", None))
    observe.probe("lm_head", "fused" if fused else "full")
    if fused:  # TRL's own helper, not a same-named one from another package
        assert module.add_fused_lm_head.__module__.startswith("trl."), module.add_fused_lm_head.__module__


@pytest.mark.stage("import")
def test_tiny_model_and_tokenizer_are_offline_and_deterministic(tokenizer: Any) -> None:
    """Cells compare pairs, so the stand-ins must not vary: same seed, same weights; text round-trips."""
    import torch

    from compat.cell.tiny import make_model

    text = "<|im_start|>user\nhéllo ✓<|im_end|>\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    assert tokenizer.chat_template == CHATML
    a, b, c = (make_model(seed=s, tokenizer=tokenizer) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))
    assert a.config.vocab_size == len(tokenizer)

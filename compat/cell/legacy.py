"""The pre-0.12 KTO example script's ``format_dataset``, kept to measure how it fails.

A test fixture of the cell suite, never part of the adapter (export-adapter
leaves this file out): TRL 0.12 dropped the step, and scripts should use
``compat.cell.adapter.format_dataset`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["legacy_format"]


def legacy_format(row: Mapping[str, Any], tokenizer: Any) -> dict[str, Any]:
    """The pre-0.12 example script's ``format_dataset``, line for line.

    The prompt comes from ``completion[:-1]`` (the ``prompt`` field is
    ignored) and the completion from ``[completion[-1]]``; string completions
    are passed to ``apply_chat_template`` as they are, exactly as the script
    did. Exceptions propagate unwrapped: measuring them is the point. The row
    is copied rather than mutated so shared test rows stay intact.
    """
    example = dict(row)
    if isinstance(example["completion"], str):
        example["prompt"] = tokenizer.apply_chat_template(example["prompt"], tokenize=False)
        example["completion"] = tokenizer.apply_chat_template(example["completion"], tokenize=False)
    else:
        example["prompt"] = tokenizer.apply_chat_template(example["completion"][:-1], tokenize=False)
        example["completion"] = tokenizer.apply_chat_template([example["completion"][-1]], tokenize=False)
    return example

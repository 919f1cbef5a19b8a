"""KTOTrainer: unpaired preference rows (prompt, completion, label)."""

from __future__ import annotations

from typing import Any

from compat.cell.discover import KTO_CANDIDATES
from compat.trainers import TrainerSpec

# A few kto-mix-14k-like exchanges: (user prompt, answer, desirable?).
EXCHANGES: tuple[tuple[str, str, bool], ...] = (
    ("What is the capital of France?", "Paris is the capital of France.", True),
    ("What is the capital of France?", "The capital of France is Berlin.", False),
    ("Name a prime number.", "Seven is a prime number.", True),
    ("Name a prime number.", "Nine is a prime number.", False),
    ("How many legs does a spider have?", "A spider has eight legs.", True),
    ("How many legs does a spider have?", "Spiders have six legs.", False),
    ("Translate 'hello' to Spanish.", "Hola.", True),
    ("Translate 'hello' to Spanish.", "Bonjour.", False),
    ("What colour is the sky on a clear day?", "It is blue.", True),
    ("What colour is the sky on a clear day?", "It is green.", False),
    ("Is water wet?", "Yes, water makes things wet.", True),
    ("Is water wet?", "I refuse to answer.", False),
)


def rows(n: int = 8, conversational: bool = False) -> list[dict[str, Any]]:
    """``n`` rows shaped like ``trl-lib/kto-mix-14k``: prompt, completion, label.

    Conversational rows hold ``[{role, content}]`` lists (the dataset's own
    shape, which KTOTrainer templates itself on newer TRL); plain rows hold
    strings, which every TRL release accepts. Labels alternate so any batch of
    two or more has both desirable and undesirable examples.
    """
    out: list[dict[str, Any]] = []
    for i in range(n):
        prompt, answer, label = EXCHANGES[i % len(EXCHANGES)]
        if conversational:
            out.append({"prompt": [{"role": "user", "content": prompt}],
                        "completion": [{"role": "assistant", "content": answer}], "label": label})
        else:
            out.append({"prompt": prompt, "completion": " " + answer, "label": label})
    return out


SPEC = TrainerSpec(
    name="kto",
    title="KTOTrainer",
    config_class="KTOConfig",
    trainer_class="KTOTrainer",
    candidates=KTO_CANDIDATES,  # the adapter imports only these, so they live beside it
    rows=rows,
    recipe={"max_length": 64, "max_prompt_length": 32, "max_completion_length": 32},
    batch=4,  # KTO's KL term pairs each completion with another prompt's: needs > 1
    adapter=True,
    models=("ref_model",),  # a reference model, as TRL's examples pass one
)

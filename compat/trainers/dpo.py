"""DPOTrainer: paired preference rows (prompt, chosen, rejected)."""

from __future__ import annotations

from typing import Any

from compat.trainers import TrainerSpec
from compat.trainers.kto import EXCHANGES


def rows(n: int = 8, conversational: bool = False) -> list[dict[str, Any]]:
    """``n`` rows shaped like ``trl-lib/ultrafeedback_binarized``: each prompt with a chosen and a rejected answer."""
    pairs = [(EXCHANGES[i][0], EXCHANGES[i][1], EXCHANGES[i + 1][1]) for i in range(0, len(EXCHANGES), 2)]
    out: list[dict[str, Any]] = []
    for i in range(n):
        prompt, chosen, rejected = pairs[i % len(pairs)]
        if conversational:
            out.append({"prompt": [{"role": "user", "content": prompt}],
                        "chosen": [{"role": "assistant", "content": chosen}],
                        "rejected": [{"role": "assistant", "content": rejected}]})
        else:
            out.append({"prompt": prompt, "chosen": " " + chosen, "rejected": " " + rejected})
    return out


SPEC = TrainerSpec(
    name="dpo",
    title="DPOTrainer",
    config_class="DPOConfig",
    trainer_class="DPOTrainer",
    candidates=("trl", "trl.trainer", "trl.trainer.dpo_trainer"),
    rows=rows,
    recipe={"max_length": 64, "max_prompt_length": 32, "max_completion_length": 32},
    batch=2,
    models=("ref_model",),  # a reference model, as TRL's examples pass one
)

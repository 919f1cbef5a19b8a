"""A KTO training script on the kto-compat adapter: one script for every TRL x transformers pair.

Copy this file next to the adapter (`kto-compat export-adapter -o kto_compat.py`) and change the
model, the data and the config values. Everything that differs between TRL and transformers
releases goes through the adapter: the config (old field names such as ``evaluation_strategy``
are translated where this TRL renamed them, misspelled ones raise TypeError), the trainer (the
tokenizer goes under the keyword this pair takes), and the rows (validated, and rendered for
trainers that do not apply chat templates themselves). A pair kto-compat measured broken stops
here with BrokenPairError, naming the nearest working pairs and the pip command to reach one.

    python kto_script.py --model trl-lib/qwen1.5-1.8b-sft --data rows.json --output-dir out
    python kto_script.py --tiny            # a tiny offline model: checks the pipeline in seconds

The kto-compat cell suite runs `train` on every measured pair with the tiny model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

try:
    import kto_compat  # the single file `kto-compat export-adapter` writes
except ImportError:  # the installed kto-compat package instead
    from compat.cell import adapter as kto_compat

EXAMPLE_ROWS = Path(__file__).resolve().parents[1] / "data" / "kto_mix_sample.json"  # kto-mix-14k's shape


def train(model: Any, ref_model: Any, tokenizer: Any, rows: list[dict[str, Any]], output_dir: str | Path,
          batch_size: int = 4, steps: int = 3, learning_rate: float = 5e-4, on_invalid: str = "raise") -> Any:
    """Format ``rows`` (kto-mix-14k style: prompt, completion, label), build the trainer, train; return it."""
    from datasets import Dataset

    # Rows stay a list until formatted: real datasets mix shapes one Arrow table refuses.
    train_dataset = Dataset.from_list(kto_compat.format_dataset(rows, tokenizer, on_invalid=on_invalid))
    args = kto_compat.KTOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=learning_rate,
        bf16=True,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN step must show as NaN, not as the running mean
        report_to="none",
        save_strategy="no",
        evaluation_strategy="no",  # the old name: this TRL may call it eval_strategy, the adapter knows
        max_length=320,
        max_prompt_length=192,  # dropped with a warning where this TRL's KTOConfig no longer has it
        max_completion_length=128,
        remove_unused_columns=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = kto_compat.KTOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train_dataset,
        tokenizer=tokenizer,  # either keyword works: the adapter passes what this pair takes
    )
    trainer.train()
    return trainer


def losses(trainer: Any) -> list[float]:
    return [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]


def _models(name: str | None) -> tuple[Any, Any, Any]:
    if name is None:  # offline stand-ins, built in code by kto-compat
        try:
            from compat.cell.tiny import make_model, make_tokenizer
        except ImportError:
            raise SystemExit("--tiny builds kto-compat's offline test model: pip install kto-compat, or pass --model") from None

        tokenizer = make_tokenizer()
        return make_model(seed=0, tokenizer=tokenizer), make_model(seed=0, tokenizer=tokenizer), tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    return AutoModelForCausalLM.from_pretrained(name), AutoModelForCausalLM.from_pretrained(name), tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a Hugging Face model id or path (policy and reference)")
    source.add_argument("--tiny", action="store_true", help="a tiny offline Llama instead")
    parser.add_argument("--data", type=Path, default=EXAMPLE_ROWS if EXAMPLE_ROWS.exists() else None,
                        required=not EXAMPLE_ROWS.exists(), help="JSON list of kto-mix-14k style rows")
    parser.add_argument("--output-dir", default="kto-out")
    ns = parser.parse_args(argv)
    model, ref_model, tokenizer = _models(None if ns.tiny else ns.model)
    trainer = train(model, ref_model, tokenizer, json.loads(ns.data.read_text(encoding="utf-8")), ns.output_dir)
    print("losses:", " ".join(f"{x:.4f}" for x in losses(trainer)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A KTO training script written the old way, run through the adapter.

Modelled on TRL's old ``examples/scripts/kto.py``: load a kto-mix-14k style
dataset, format it, build ``KTOConfig`` with the field names of its day
(``evaluation_strategy``, ``no_cuda``), build ``KTOTrainer(..., tokenizer=...)``
and train in BF16. Every version-sensitive step goes through the adapter
module passed in, so one unchanged script runs on every measured pair - that
is the claim the cell suite checks by running this file.

The adapter is a *module* argument so the same code runs against the
installed ``compat.adapter`` or a single exported ``kto_compat.py``::

    python compat/examples/kto_script.py                        # compat.adapter
    python compat/examples/kto_script.py --adapter kto_compat.py

The tiny offline model stands in for ``trl-lib/qwen1.5-1.8b-sft`` so the
script runs anywhere in seconds; swap in ``AutoModelForCausalLM`` for real use.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "kto_mix_sample.json"


def load_adapter(spec: str | None) -> ModuleType:
    """``compat.adapter`` by default, else the adapter file at ``spec``.

    A file is registered in ``sys.modules`` before it runs: its dataclasses
    look their module up there while being created.
    """
    if spec is None:
        return importlib.import_module("compat.adapter")
    path = Path(spec).resolve()
    name = f"kto_compat_{abs(hash(str(path)))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import an adapter from {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def main(adapter: ModuleType, output_dir: str | Path, data: Path = DATA, rows: list[dict[str, Any]] | None = None,
         batch_size: int = 4, steps: int = 3, on_invalid: str = "raise") -> list[float]:
    """Train ``steps`` BF16 KTO steps on ``rows`` (default: the JSON file ``data``) through ``adapter``;
    return the logged losses."""
    import torch
    from datasets import Dataset

    from compat.cell.tiny import make_model, make_tokenizer

    cuda = torch.cuda.is_available()
    tokenizer = make_tokenizer()  # ChatML, like the kto-mix-14k SFT model
    model = make_model(seed=0, tokenizer=tokenizer)
    ref_model = make_model(seed=0, tokenizer=tokenizer)

    if rows is None:
        rows = json.loads(Path(data).read_text(encoding="utf-8"))
    # Raw rows as a list: real datasets mix shapes (string and message-list prompts) that one Arrow table refuses.
    train_dataset = Dataset.from_list(adapter.format_dataset(rows, tokenizer, on_invalid=on_invalid))

    args = adapter.make_kto_config(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=5e-4,
        bf16=True,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN step must show as NaN, not as the running mean
        report_to="none",
        save_strategy="no",
        evaluation_strategy="no",  # the old name; newer transformers call it eval_strategy
        no_cuda=not cuda,  # the old name; newer transformers call it use_cpu
        max_length=320,
        max_prompt_length=192,
        max_completion_length=128,
        remove_unused_columns=False,
        disable_tqdm=True,
        seed=0,
    )
    trainer = adapter.make_kto_trainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train_dataset,
        tokenizer=tokenizer,  # the old keyword; the adapter passes what this pair takes
    )
    trainer.train()
    return [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="path to an exported kto_compat.py (default: compat.adapter)")
    parser.add_argument("--output-dir", help="trainer output directory (default: a temporary one)")
    parser.add_argument("--data", type=Path, default=DATA, help="kto-mix-14k style JSON rows")
    ns = parser.parse_args(argv)
    adapter = load_adapter(ns.adapter)
    if ns.output_dir:
        losses = main(adapter, ns.output_dir, ns.data)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            losses = main(adapter, tmp, ns.data)
    print("losses:", " ".join(f"{x:.4f}" for x in losses))
    return 0


if __name__ == "__main__":
    # Run as a file, the checkout root is not on sys.path; compat.tiny lives there.
    try:
        import compat  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(_cli())

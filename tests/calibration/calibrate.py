"""Measure the peak memory of real BF16 KTO steps on tiny Llamas; print JSON.

Runs inside one TRL/transformers environment (``python
tests/calibration/calibrate.py SPEC_JSON``, the checkout on PYTHONPATH) and is how ``compat.memory``'s estimates are
checked against reality (tests/calibration). Every number here is measured:

- ``peak_bytes``: on CUDA, ``torch.cuda.max_memory_allocated`` above what was
  allocated before the models were built; on CPU, the peak resident set
  (``/proc/self/statm`` sampled every millisecond) above the RSS before the
  models were built. Both therefore include the policy and reference weights,
  the trainer's construction and the training steps.
- ``logits``: ``"chunked"`` when the installed KTOTrainer computes log-probs
  through a fused LM head (``fused_lm_head=True`` in its source), else
  ``"full"`` (it materialises batch x seq x vocab logits). Read from the
  installed code, never from a version number.
- ``seq_len``/``kl_seq_len``: the padded widths of a real training batch.

Sizes run one after another in one process (imports cost more than the
runs). A throwaway run first loads every lazily imported module, so the first
measured peak is training memory, not code. On CPU, glibc's dynamic mmap
threshold would keep freed blocks in the heap after a run and hide the next
run's peak; it is pinned (``mallopt``) so large tensors are mmapped and
returned to the system on free. Measured this way, one size gives the same
peak within ~4% whether it runs alone in a fresh process or after others.
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import json
import os
import sys
import time
import warnings
from typing import Any

from compat.cell.peak import Peak, rss_bytes
from compat.cell.tiny import config_values, make_config
from compat.trainers.kto import SPEC as KTO

DEFAULT_SPEC: dict[str, Any] = {
    "batch_size": 4,
    "prompt_len": 48,
    "completion_len": 80,
    "steps": 2,
    "gradient_checkpointing": False,
    "sizes": [
        {"hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 2, "vocab_size": 4096,
         "num_attention_heads": 4, "num_key_value_heads": 2},
    ],
}


# The trainer prints its logs to stdout too; the result is the line that starts with this.
MARKER = "compat-calibration: "

# A throwaway run first: it loads every lazily imported module and does one-time
# setup, so the measured run's peak is the training's, not the code's.
WARMUP: dict[str, Any] = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "vocab_size": 512,
                          "num_attention_heads": 2, "num_key_value_heads": 1}


def _pin_malloc() -> None:
    """Large allocations via mmap, returned to the OS on free (glibc only; harmless elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, which also disables the dynamic threshold
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _rows(n: int, prompt_len: int, completion_len: int) -> list[dict[str, Any]]:
    """Plain rows whose prompts (and completions) all tokenize to the same length: no padding anywhere.

    compat.tiny's tokenizer spends one id per byte, so fixed-width ASCII text
    gives fixed-width ids, and KTO's mismatched KL pairs are as long as the
    matched ones.
    """
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    rows = []
    for i in range(n):
        text = (words * 64)[i % 13:]
        rows.append({"prompt": text[:prompt_len], "completion": text[::-1][:completion_len], "label": i % 2 == 0})
    return rows


def _config_values(spec: dict[str, Any], out: str, cuda: bool) -> dict[str, Any]:
    prompt, completion = spec["prompt_len"], spec["completion_len"]
    # Room for the whole row plus the specials any TRL adds: nothing is truncated.
    return config_values(out, cpu=not cuda, batch=spec["batch_size"], steps=spec["steps"], learning_rate=1e-4,
                         max_length=prompt + completion + 8, max_prompt_length=prompt + 4,
                         max_completion_length=completion + 4, checkpointing=spec["gradient_checkpointing"])


def _build_model(size: dict[str, Any], tok: Any, max_positions: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
        **size,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def _trainer(kto: Any, tok: Any, size: dict[str, Any], spec: dict[str, Any], out: str, cuda: bool) -> Any:
    from datasets import Dataset

    n_rows = spec["batch_size"] * spec["steps"]
    dataset = Dataset.from_list(_rows(n_rows, spec["prompt_len"], spec["completion_len"]))
    args = make_config(kto.config, _config_values(spec, out, cuda), KTO.config_aliases)
    positions = spec["prompt_len"] + spec["completion_len"] + 16
    error: Exception | None = None
    for keyword in ("processing_class", "tokenizer"):
        try:
            return kto.trainer(
                model=_build_model(size, tok, positions),
                ref_model=_build_model(size, tok, positions),
                args=args,
                train_dataset=dataset,
                **{keyword: tok},
            )
        except TypeError as exc:  # this pair takes the other keyword
            error = exc
    assert error is not None
    raise error


def measure_one(size: dict[str, Any], spec: dict[str, Any], out: str, warm: bool = True) -> dict[str, Any]:
    """Build policy + reference + trainer and train; the peak covers all three."""
    from importlib import metadata

    import torch

    from compat.cell.discover import discover
    from compat.cell.tiny import make_tokenizer

    cuda = torch.cuda.is_available()
    torch.set_num_threads(int(spec.get("threads") or os.cpu_count() or 1))
    kto = discover()
    if not kto.ok:
        raise RuntimeError(f"KTO did not import: {kto.error}")
    tok = make_tokenizer()
    logits = "chunked" if "fused_lm_head=True" in inspect.getsource(kto.trainer) else "full"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warm:
            _trainer(kto, tok, WARMUP, spec, f"{out}-warmup", cuda).train()  # lazy imports, one-time setup
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()  # the maximum restarts from what is allocated now
            read, method = torch.cuda.max_memory_allocated, "cuda: torch.cuda.max_memory_allocated above the pre-model allocation"
        else:
            read, method = rss_bytes, "cpu: peak RSS (/proc/self/statm, 1 ms samples) above the pre-model RSS"
        start = time.perf_counter()
        with Peak(read, interval=0.001) as peak:
            trainer = _trainer(kto, tok, size, spec, out, cuda)
            built = read() - peak.start
            trainer.train()
        seconds = time.perf_counter() - start
    batch = next(iter(trainer.get_train_dataloader()))
    widths = {k: int(v.shape[-1]) for k, v in batch.items() if k.endswith("input_ids") and hasattr(v, "shape")}
    seq = max((w for k, w in widths.items() if "KL" not in k and "prompt" not in k), default=0)
    kl = max((w for k, w in widths.items() if "KL" in k and "prompt" not in k), default=seq)
    optim = getattr(trainer.args.optim, "value", trainer.args.optim)
    return {
        "size": size,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "device": "cuda" if cuda else "cpu",
        "logits": logits,
        "optim": str(optim),
        "batch_size": spec["batch_size"],
        "seq_len": seq,
        "kl_seq_len": kl,
        "widths": widths,
        "gradient_checkpointing": spec["gradient_checkpointing"],
        "steps": int(trainer.state.global_step),
        "losses": [float(e["loss"]) for e in trainer.state.log_history if "loss" in e],
        "peak_bytes": int(peak.delta),
        "build_bytes": int(built),
        "seconds": round(seconds, 2),
        "method": method,
        "versions": {d: metadata.version(d) for d in ("trl", "transformers", "torch")},
    }


def main(argv: list[str]) -> int:
    """``SPEC_JSON`` (or nothing, for DEFAULT_SPEC): measure each size in turn; print MARKER + JSON."""
    import tempfile

    _pin_malloc()
    spec = {**DEFAULT_SPEC, **(json.loads(argv[0]) if argv else {})}
    results = []
    with tempfile.TemporaryDirectory() as out:
        for i, size in enumerate(spec["sizes"]):
            one = {k: v for k, v in spec.items() if k != "sizes"}
            one.update(size.get("run", {}))  # per-size overrides: batch_size, prompt_len, ...
            model = {k: v for k, v in size.items() if k not in ("run", "name")}
            results.append(measure_one(model, one, f"{out}/{i}", warm=i == 0))
            gc.collect()
    print(MARKER + json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

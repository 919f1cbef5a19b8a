"""``python -m compat memory``: the subparser and its handler; compat/cli/main.py calls ``register``.

Numbers are taken as text and checked here, not by argparse, so every bad value
(0, -1, nan, inf, banana) ends the same way: one ``<prog>: error:`` line naming
the flag and the value, exit 2 (``MemoryInputError`` is a ``ConfigError``, which
``compat.cli.main`` reports).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from compat.cli import options
from compat.memory.facts import DEFAULT_FINDINGS, BatchOne, FusedHead, batch_one, fused_head, load_findings, parse_pair
from compat.memory.render import render, report, summary
from compat.memory.setup import DEVICES, LOGITS, OPTIMS, PRECISIONS, SHARDS, WEIGHTS, Setup
from compat.memory.shape import QWEN15_18B, MemoryInputError, load_config, parse_count, shape_for_params

LARGEST = 10**6  # past any real batch, sequence, layer count or GPU count; keeps every answer under a second


def whole(args: argparse.Namespace, name: str, minimum: int = 1) -> int:
    """The flag's value (every such flag has a default) as a whole number from ``minimum`` to LARGEST."""
    text = getattr(args, name)
    flag = "--" + name.replace("_", "-")
    try:
        value = int(text.strip().replace("_", ""), 10)
    except ValueError:
        raise MemoryInputError(f"{flag} {text!r}: not a whole number") from None
    if value < minimum:
        raise MemoryInputError(f"{flag} {text!r}: must be at least {minimum}")
    if value > LARGEST:
        raise MemoryInputError(f"{flag} {text!r}: must be at most {LARGEST:,}")
    return value


def positive(args: argparse.Namespace, name: str) -> float:
    """The flag's value as a finite number above 0."""
    text, flag = getattr(args, name), "--" + name.replace("_", "-")
    try:
        value = float(text)
    except ValueError:
        raise MemoryInputError(f"{flag} {text!r}: not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise MemoryInputError(f"{flag} {text!r}: must be a finite number above 0")
    return value


def build_setup(args: argparse.Namespace) -> Setup:
    params = parse_count(args.params) if args.params is not None else None
    if args.model_config:
        shape = load_config(args.model_config)
    elif params is not None:
        shape = shape_for_params(params)
    else:
        shape = replace(QWEN15_18B, source=f"{QWEN15_18B.source}, assumed: no --params or --model-config given",
                        guessed=True)
    overrides: dict[str, Any] = {field: whole(args, flag) for field, flag in (
        ("hidden", "hidden_size"), ("intermediate", "intermediate_size"), ("layers", "layers"),
        ("vocab", "vocab_size")) if getattr(args, flag) is not None}  # the shape's own unless given
    if overrides:
        shape = replace(shape, **overrides, source=f"{shape.source}, overridden by flags")
    lora_rank = whole(args, "lora_rank", minimum=0)
    weights = "nf4" if args.qlora else args.weights
    if args.qlora:
        lora_rank = lora_rank or 16
    elif weights == "nf4" and lora_rank == 0:
        raise MemoryInputError("--weights nf4 is QLoRA's 4-bit base: give --lora-rank R too (or use --qlora)")
    return Setup(
        shape=shape, params=params, batch_size=whole(args, "batch_size"), seq_len=whole(args, "seq_len"),
        precision=args.precision, weights=weights, gpu_gib=positive(args, "gpu_gib"),
        lora_rank=lora_rank, gradient_checkpointing=args.gradient_checkpointing,
        grad_accum=whole(args, "grad_accum"), precompute_ref=args.precompute_ref, optim=args.optim,
        logits=args.logits, device=args.device, gpus=whole(args, "gpus"), shard=args.shard)


def measured(args: argparse.Namespace) -> tuple[BatchOne, FusedHead]:
    """What findings.json measured: batch 1 (for --pair or across every measured pair), and which TRL
    releases have the fused, chunked LM head."""
    path = args.findings or DEFAULT_FINDINGS
    pair = parse_pair(args.pair) if args.pair is not None else None
    source = str(args.findings) if args.findings else "compat/findings.json"
    data = load_findings(path)
    return batch_one(data, pair, source), fused_head(data, source)


def cmd_memory(args: argparse.Namespace) -> int:
    """Estimate KTO training memory; verdict for the GPU and ranked fixes."""
    result = report(build_setup(args), *measured(args))
    # Flushed here, so a reader that stops early (`| head -1`) meets main's BrokenPipeError handling.
    print(json.dumps(result.to_dict(), indent=2) if args.json else render(result) if args.detail else summary(result),
          flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``memory`` subcommand to compat's subparsers."""
    mem = sub.add_parser("memory", formatter_class=options.Help,
                         help="estimate KTO training memory, say if it fits the GPU and what to change")
    src = mem.add_mutually_exclusive_group()
    src.add_argument("--params", default=None, metavar="COUNT",
                     help="parameter count: 1.8B, 7b, 500M, 1.8e9 or 1_800_000_000 (K/M/B/T, any case); "
                          "the shape is then guessed from Qwen1.5-1.8B's proportions")
    src.add_argument("--model-config", "--config-json", dest="model_config", type=Path, default=None,
                     metavar="CONFIG_JSON", help="the model's Hugging Face config.json: the real shape")
    for flag in ("--hidden-size", "--intermediate-size", "--layers", "--vocab-size"):
        mem.add_argument(flag, default=None, metavar="N", help="override the shape")
    mem.add_argument("--batch-size", default="16", metavar="N", help="per_device_train_batch_size (default: 16)")
    mem.add_argument("--seq-len", default="1024", metavar="N",
                     help="padded prompt+completion length: KTOConfig.max_length "
                          "(default: 1024; older TRL defaulted to 512)")
    mem.add_argument("--precision", choices=PRECISIONS, default="bf16", help="TrainingArguments bf16/fp16 (autocast)")
    mem.add_argument("--weights", choices=WEIGHTS, default="fp32",
                     help="dtype the model is loaded in (default fp32: the KTO example's from_pretrained without a "
                          "dtype); nf4 = QLoRA's 4-bit base, needs --lora-rank")
    mem.add_argument("--qlora", action="store_true",
                     help="QLoRA: 4-bit (nf4) base weights + LoRA adapters (rank --lora-rank, default 16); "
                          "an estimate, not calibrated on real runs")
    mem.add_argument("--gpu-gib", default="24", metavar="GIB", help="GPU memory in GiB (default: 24)")
    mem.add_argument("--lora-rank", default="0", metavar="R", help="LoRA rank on all linear layers; 0 = full fine-tune")
    mem.add_argument("--gradient-checkpointing", action="store_true",
                     help="gradient_checkpointing=True: recompute activations in backward instead of keeping them")
    mem.add_argument("--grad-accum", default="1", metavar="N", help="gradient_accumulation_steps (default: 1)")
    mem.add_argument("--precompute-ref", action="store_true", help="precompute_ref_log_probs=True with ref_model=None")
    mem.add_argument("--optim", choices=OPTIMS, default="adamw_torch",
                     help="TrainingArguments optim (adamw_8bit: bitsandbytes' 8-bit AdamW states)")
    mem.add_argument("--logits", choices=LOGITS, default="full",
                     help="full: B x S x vocab logits materialised (older KTOTrainers); "
                          "chunked: per-token log-probs through a fused, tiled LM head (newer KTOTrainers)")
    mem.add_argument("--device", choices=DEVICES, default="cuda", help="where training runs")
    mem.add_argument("--gpus", default="1", metavar="N",
                     help="GPUs running the job (default: 1); the estimate is per GPU, batch sizes are per device")
    mem.add_argument("--shard", choices=SHARDS, default="none",
                     help="split states over --gpus: zero2 = optimizer states + gradients, zero3/fsdp = also the "
                          "weights (FSDP full shard); an estimate, not calibrated on real runs")
    mem.add_argument("--findings", type=Path, default=None, metavar="PATH",
                     help="findings.json whose measured batch_size_one fact decides whether batch 1 may be "
                          "recommended (default: the package's compat/findings.json; a missing file = unmeasured)")
    mem.add_argument("--pair", default=None, metavar="trl==A,transformers==B",
                     help="use this pair's measurements (default: batch 1 only if every measured pair accepts it)")
    mem.add_argument("--detail", action="store_true",
                     help="the whole report: the breakdown line by line, every single change, the notes (default: the "
                          "verdict and the best recipes that fit)")
    mem.add_argument("--json", action="store_true", help="machine-readable output")
    mem.set_defaults(func=cmd_memory)

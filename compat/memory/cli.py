"""``python -m compat memory``: the subparser and its handler; compat/cli.py calls ``register``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from .estimate import Setup
from .render import render, report
from .shape import QWEN15_18B, load_config, shape_for_params


def cmd_memory(args: argparse.Namespace) -> int:
    """Estimate KTO training memory; verdict for the GPU and ranked fixes."""
    if args.config_json:
        shape = load_config(args.config_json)
    elif args.params:
        shape = shape_for_params(args.params)
    else:
        shape = QWEN15_18B
    overrides = {k: v for k, v in (("hidden", args.hidden_size), ("intermediate", args.intermediate_size),
                                   ("layers", args.layers), ("vocab", args.vocab_size)) if v}
    if overrides:
        shape = replace(shape, **overrides, source=f"{shape.source}, overridden by flags")
    setup = Setup(
        shape=shape, params=int(args.params) if args.params and not args.config_json else None,
        batch_size=args.batch_size, seq_len=args.seq_len, precision=args.precision, weights=args.weights,
        gpu_gib=args.gpu_gib, lora_rank=args.lora_rank, gradient_checkpointing=args.gradient_checkpointing,
        grad_accum=args.grad_accum, precompute_ref=args.precompute_ref, optim=args.optim, logits=args.logits,
        device=args.device)
    result = report(setup)  # MemoryInputError is a ConfigError: compat.cli.main prints it and exits 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else render(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``memory`` subcommand to compat's subparsers."""
    mem = sub.add_parser("memory", help="estimate KTO training memory, say if it fits the GPU and what to change")
    src = mem.add_mutually_exclusive_group()
    src.add_argument("--params", type=float, default=None, help="parameter count, e.g. 1.8e9 (shape: Qwen1.5-1.8B's, scaled)")
    src.add_argument("--config-json", type=Path, default=None, help="the model's Hugging Face config.json")
    for flag in ("--hidden-size", "--intermediate-size", "--layers", "--vocab-size"):
        mem.add_argument(flag, type=int, default=None, help="override the shape")
    mem.add_argument("--batch-size", type=int, default=16, help="per_device_train_batch_size (default: 16)")
    mem.add_argument("--seq-len", type=int, default=1024, help="padded prompt+completion length: max_length (default: 1024, TRL 1.16's KTOConfig; TRL 0.12 used 512)")
    mem.add_argument("--precision", choices=("bf16", "fp16", "fp32"), default="bf16", help="TrainingArguments bf16/fp16 (autocast)")
    mem.add_argument("--weights", choices=("fp32", "bf16", "fp16"), default="fp32",
                     help="dtype the model is loaded in (default fp32: the KTO example's from_pretrained without a dtype)")
    mem.add_argument("--gpu-gib", type=float, default=24.0, help="GPU memory in GiB (default: 24)")
    mem.add_argument("--lora-rank", type=int, default=0, help="LoRA rank on all linear layers; 0 = full fine-tune")
    mem.add_argument("--gradient-checkpointing", action="store_true")
    mem.add_argument("--grad-accum", type=int, default=1, help="gradient_accumulation_steps")
    mem.add_argument("--precompute-ref", action="store_true", help="precompute_ref_log_probs=True with ref_model=None")
    mem.add_argument("--optim", choices=("adamw_torch", "adamw_torch_fused", "adamw_8bit"), default="adamw_torch")
    mem.add_argument("--logits", choices=("full", "chunked"), default="full",
                     help="full: B x S x vocab logits materialised (TRL 0.12-era KTOTrainer); chunked: fused LM head (TRL 1.16)")
    mem.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    mem.add_argument("--json", action="store_true", help="machine-readable output")
    mem.set_defaults(func=cmd_memory)

"""The estimator asked about exactly what tests/calibration/calibrate.py measured: one place for the
calibration test and the GPU check (compat/harness/gpu.py) to compare an estimate with a measured peak."""

from __future__ import annotations

from typing import Any

from .estimate import Estimate, estimate
from .setup import Setup
from .shape import Shape


def estimate_for(run: dict[str, Any]) -> Estimate:
    """The estimator, asked about exactly what calibrate.py ran."""
    size = run["size"]
    shape = Shape(hidden=size["hidden_size"], intermediate=size["intermediate_size"],
                  layers=size["num_hidden_layers"], vocab=size["vocab_size"],
                  heads=size["num_attention_heads"], kv_heads=size["num_key_value_heads"])
    if shape.params != run["params"]:
        raise ValueError(f"the estimator counts {shape.params} parameters, the real model {run['params']}")
    return estimate(Setup(
        shape=shape, batch_size=run["batch_size"], seq_len=run["seq_len"], kl_seq_len=run["kl_seq_len"],
        precision="bf16", weights="fp32", gradient_checkpointing=run["gradient_checkpointing"],
        optim="adamw_torch_fused" if run["optim"] == "adamw_torch_fused" else "adamw_torch",
        logits=run["logits"], device=run["device"]))


def compared(run: dict[str, Any]) -> tuple[int, int]:
    """(estimate, measured) in bytes; on CUDA without the uncalibrated overhead line (not in the allocator's peak)."""
    e = estimate_for(run)
    overhead = next(line.bytes for line in e.lines if line.name == "framework overhead")
    return e.total - (overhead if run["device"] == "cuda" else 0), run["peak_bytes"]

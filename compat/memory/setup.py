"""One KTO training configuration: the input every memory module reads (and the words each knob allows).

Its own module so that estimate and states both build on it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .shape import MemoryInputError, Shape

PRECISIONS = ("bf16", "fp16", "fp32")
WEIGHTS = ("fp32", "bf16", "fp16", "nf4")
OPTIMS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit")
LOGITS = ("full", "chunked")
DEVICES = ("cuda", "cpu")
SHARDS = ("none", "zero2", "zero3", "fsdp")


@dataclass(frozen=True)
class Setup:
    """One KTO training configuration on one device.

    ``precision`` is ``TrainingArguments(bf16=True)`` & co: autocast compute.
    ``weights`` is the dtype the model was *loaded* in. The KTO example script
    loads with ``from_pretrained`` and no dtype (TRL's ``ModelConfig.dtype``
    defaults to float32 in recent TRL), so the default is FP32 weights under BF16
    autocast: the FP32 weights are the master copy, and autocast's BF16 copies
    of them are saved for backward. Loading in BF16 (``--dtype bfloat16``) makes
    weights, gradients and AdamW states BF16 with no FP32 master copy. ``nf4`` is
    QLoRA's 4-bit base (LoRA only). ``gpus``/``shard``: the same run on each of
    ``gpus`` GPUs, its states split by ZeRO-2/ZeRO-3/FSDP (compat/memory/states.py);
    the estimate is per GPU.
    """

    shape: Shape
    batch_size: int = 16
    seq_len: int = 1024
    params: int | None = None  # override the shape's count (a bare --params)
    precision: str = "bf16"
    weights: str = "fp32"
    gpu_gib: float = 24.0
    lora_rank: int = 0
    gradient_checkpointing: bool = False
    grad_accum: int = 1
    precompute_ref: bool = False
    optim: str = "adamw_torch"
    logits: str = "full"
    device: str = "cuda"
    kl_seq_len: int | None = None  # width of the KL batch; the batch's own by default
    gpus: int = 1
    shard: str = "none"

    def __post_init__(self) -> None:
        for name, value, allowed in (("precision", self.precision, PRECISIONS), ("weights", self.weights, WEIGHTS),
                                     ("optim", self.optim, OPTIMS), ("logits", self.logits, LOGITS),
                                     ("device", self.device, DEVICES), ("shard", self.shard, SHARDS)):
            if value not in allowed:
                raise MemoryInputError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        for name in ("batch_size", "seq_len", "grad_accum", "gpus"):
            if getattr(self, name) < 1:
                raise MemoryInputError(f"{name} must be at least 1, not {getattr(self, name)!r}")
        if self.lora_rank < 0:
            raise MemoryInputError(f"lora_rank must be >= 0 (0 = full fine-tune), not {self.lora_rank!r}")
        if self.weights == "nf4" and self.lora_rank == 0:
            raise MemoryInputError("weights nf4 is QLoRA: it trains LoRA adapters, so lora_rank must be > 0")
        if not (math.isfinite(self.gpu_gib) and self.gpu_gib > 0):  # NaN compares False with everything
            raise MemoryInputError(f"gpu_gib must be a finite number above 0, not {self.gpu_gib!r}")

    @property
    def total_params(self) -> int:
        return self.params if self.params is not None else self.shape.params

    @property
    def autocast(self) -> bool:
        """Mixed precision: half-precision compute over FP32 weights."""
        return self.precision != "fp32" and self.weights == "fp32"

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

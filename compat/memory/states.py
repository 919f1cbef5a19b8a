"""Model states per GPU: weights, reference copy, optimizer states, gradients.

Byte counts, including the two ways of shrinking them that change how the
states are stored rather than how the step runs:

- **QLoRA** (``weights="nf4"``): bitsandbytes stores every decoder Linear in 4
  bits with one fp32 absmax per 64-weight block (no nested quantisation); the
  embeddings, norms and LM head stay in the 16-bit load dtype; LoRA adapters
  train in fp32 over the frozen 4-bit base, which (adapters off) is also the
  reference.
- **Sharding over N GPUs**: ZeRO-2 splits optimizer states and gradients,
  ZeRO-3 and FSDP full-shard split the weights too. TRL prepares the reference
  model with ZeRO-3 when the policy uses it (and with ZeRO disabled under
  ZeRO-2); FSDP is taken to shard the reference like ZeRO-3. Sharded weights
  are gathered for compute: about two decoder layers (the current one and
  the prefetched next) plus the LM head (tied: the embedding) are full-size
  at once, at the moment the logits are computed.

Neither was calibrated on real runs; the report says so wherever they appear.
"""

from __future__ import annotations

from dataclasses import dataclass

from .setup import Setup

_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_NF4 = 0.5 + 4 / 64  # 4-bit values + an fp32 absmax per 64-weight block
_NF4_REST = 2  # what QLoRA leaves unquantised (embeddings, norms, LM head) stays bf16/fp16
_GATHERED_LAYERS = 2  # ZeRO-3/FSDP: the layer being computed and the prefetched next one


@dataclass(frozen=True)
class States:
    """Bytes held per GPU for the model states, and how they are split."""

    trainable: int  # trainable parameters (all of them, or the LoRA adapters)
    grad_bytes: int  # bytes per trainable parameter's gradient
    policy: float
    reference: float
    optimizer: float
    gradients: float  # every trainable parameter's gradient, this GPU's share
    gathered: float  # ZeRO-3/FSDP: weights gathered full-size for compute; 0 otherwise
    weights_split: int  # how many GPUs share the weights (1: each holds all)
    grads_split: int
    optimizer_split: int

    def share(self, split: int) -> str:
        return "" if split == 1 else f", 1/{split} per GPU"


def weight_bytes(setup: Setup) -> float:
    """The base model's weights, whole (before any sharding)."""
    if setup.weights != "nf4":
        return setup.total_params * _BYTES[setup.weights]
    shape = setup.shape
    linear = shape.layers * shape.layer_linear * setup.total_params / shape.params
    return linear * _NF4 + (setup.total_params - linear) * _NF4_REST


def model_states(setup: Setup) -> States:
    s, shape = setup, setup.shape
    lora = s.lora_rank > 0
    trainable = shape.lora_params(s.lora_rank) if lora else s.total_params
    tbytes = 4 if lora else _BYTES[s.weights]  # PEFT keeps adapters in FP32
    n = s.gpus if s.shard != "none" else 1
    w_split = n if s.shard in ("zero3", "fsdp") else 1
    weights = weight_bytes(s)
    policy = (weights + (trainable * 4 if lora else 0)) / w_split
    # LoRA's reference is the policy with adapters off; precomputed log-probs need none.
    reference = weights / w_split if not lora and not s.precompute_ref else 0
    per_state = 2 if s.optim == "adamw_8bit" else 2 * tbytes
    gathered = 0.0
    if w_split > 1:
        scale = s.total_params / shape.params
        dense = _BYTES.get(s.weights, _NF4_REST)
        head = shape.lm_head or shape.embedding
        gathered = dense * scale * (_GATHERED_LAYERS * shape.layer_linear + head)
    return States(trainable=trainable, grad_bytes=tbytes, policy=policy, reference=reference,
                  optimizer=trainable * per_state / n, gradients=trainable * tbytes / n, gathered=gathered,
                  weights_split=w_split, grads_split=n, optimizer_split=n)

"""The model's shape: what parameter counts and activation sizes depend on.

A shape comes from a Hugging Face ``config.json`` (the real one) or is
guessed from a bare parameter count (Qwen1.5-1.8B's proportions, scaled).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compat.harness.config import ConfigError


class MemoryInputError(ConfigError):
    """Bad input for the estimator; the message names the flag or field and the value.

    A ConfigError, so ``compat.cli.main`` prints it as one ``compat: error:`` line and exits 2.
    """


@dataclass(frozen=True)
class Shape:
    """A Llama/Qwen-style decoder: what parameter counts and activation sizes depend on."""

    hidden: int
    intermediate: int
    layers: int
    vocab: int
    heads: int
    kv_heads: int
    tied: bool = False
    qkv_bias: bool = False
    head_dim: int | None = None
    source: str = ""

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def layer_linear(self) -> int:
        """Parameters of one layer's Linear modules (q, k, v, o, gate, up, down), biases included."""
        q = self.heads * self.dim
        kv = self.kv_heads * self.dim
        attn = self.hidden * (q + 2 * kv) + q * self.hidden
        bias = (q + 2 * kv) if self.qkv_bias else 0
        return attn + bias + 3 * self.hidden * self.intermediate

    @property
    def embedding(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head(self) -> int:
        """The LM head's own parameters: none when tied to the embedding."""
        return 0 if self.tied else self.vocab * self.hidden

    @property
    def params(self) -> int:
        norms = self.layers * 2 * self.hidden + self.hidden
        return self.embedding + self.lm_head + self.layers * self.layer_linear + norms

    def lora_params(self, rank: int) -> int:
        """LoRA A and B matrices on every Linear of every layer (PEFT's ``all-linear``: not the LM head)."""
        q, kv, h, i = self.heads * self.dim, self.kv_heads * self.dim, self.hidden, self.intermediate
        per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
        return rank * per_layer * self.layers

    def describe(self) -> str:
        tie = ", tied embeddings" if self.tied else ""
        gqa = f", {self.kv_heads} kv heads" if self.kv_heads != self.heads else ""
        return (f"hidden {self.hidden}, intermediate {self.intermediate}, {self.layers} layers, "
                f"{self.heads} heads{gqa}, vocab {self.vocab}{tie}")


# The KTO example's model, trl-lib/qwen1.5-1.8b-sft: Qwen1.5-1.8B's shape.
QWEN15_18B = Shape(hidden=2048, intermediate=5504, layers=24, vocab=151936, heads=16, kv_heads=16,
                   tied=False, qkv_bias=True, source="Qwen1.5-1.8B (the KTO example's model)")


def shape_for_params(params: float) -> Shape:
    """A plausible shape for a bare parameter count: Qwen1.5-1.8B's proportions, hidden size scaled.

    24 layers, vocab 151936, intermediate = 2.6875 x hidden, head dim 128, hidden
    rounded to a multiple of 128 - which gives back Qwen1.5-1.8B itself for 1.8e9.
    """
    ref = QWEN15_18B
    ratio = ref.intermediate / ref.hidden
    a = ref.layers * (4 + 3 * ratio)
    b = (1 if ref.tied else 2) * ref.vocab
    hidden = (-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)
    hidden = max(128, int(round(hidden / 128)) * 128)
    if hidden == ref.hidden:
        return replace(ref, source=f"{ref.source}, assumed from the parameter count")
    heads = max(1, hidden // 128)
    return replace(ref, hidden=hidden, intermediate=int(round(hidden * ratio / 64)) * 64, heads=heads,
                   kv_heads=heads, source=f"Qwen1.5-1.8B proportions scaled to {params:.3g} parameters (assumed)")


def shape_from_config(config: dict[str, Any], source: str = "config") -> Shape:
    """The shape from a Hugging Face ``config.json`` (text config of multimodal models included)."""
    cfg = config.get("text_config") or config
    try:
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        shape = Shape(
            hidden=hidden,
            intermediate=int(cfg["intermediate_size"]),
            layers=int(cfg["num_hidden_layers"]),
            vocab=int(cfg["vocab_size"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            tied=bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", True))),
            qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
            head_dim=int(cfg["head_dim"]) if cfg.get("head_dim") else None,
            source=source,
        )
    except KeyError as exc:
        raise MemoryInputError(f"{source}: missing {exc.args[0]!r}; need hidden_size, intermediate_size, "
                               "num_hidden_layers, vocab_size, num_attention_heads") from None
    except (TypeError, ValueError) as exc:
        raise MemoryInputError(f"{source}: {exc}") from None
    return shape


def load_config(path: Path) -> Shape:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MemoryInputError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise MemoryInputError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MemoryInputError(f"{path}: expected a JSON object")
    return shape_from_config(data, str(path))

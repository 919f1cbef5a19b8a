"""The model's shape: what parameter counts and activation sizes depend on.

A shape comes from a Hugging Face ``config.json`` (the real one) or is
guessed from a bare parameter count (Qwen1.5-1.8B's proportions, scaled).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from compat.harness.config import ConfigError


class MemoryInputError(ConfigError):
    """Bad input for the estimator; the message names the flag or field and the value.

    A ConfigError, so ``compat.cli.main`` prints it as one ``<prog>: error:`` line and exits 2.
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
    guessed: bool = False  # not read from the model's config.json: activations and logits may be far off

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


_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_SUFFIXED = re.compile(r"([+-]?(?:\d[\d_]*(?:\.\d+)?|\.\d+))\s*([kmbt])", re.IGNORECASE)


MOST_PARAMS = 1e15


def parse_count(text: str, flag: str = "--params") -> int:
    """``1.8B``, ``7b``, ``500M``, ``1.8e9``, ``1_800_000_000`` -> a whole, finite, positive count.

    Suffixes are case-insensitive K/M/B/T (thousand, million, billion, trillion). NaN,
    infinities, zero and negatives are refused: none of them is a model.
    """
    raw = text.strip()
    m = _SUFFIXED.fullmatch(raw)
    try:
        value = float(m[1]) * _SUFFIXES[m[2].lower()] if m else float(raw)
    except ValueError:
        raise MemoryInputError(f"{flag} {text!r}: not a number; use e.g. 1.8B, 7b, 500M, 1.8e9 "
                               "or 1_800_000_000") from None
    if not math.isfinite(value) or value < 1:
        raise MemoryInputError(f"{flag} {text!r}: must be a finite, positive parameter count (e.g. 1.8B)")
    if value > MOST_PARAMS:  # past every model there is; the shape scaled to it rounds to nonsense
        raise MemoryInputError(f"{flag} {text!r}: must be at most {MOST_PARAMS:.0e} parameters")
    return int(round(value))


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
        return replace(ref, source=f"{ref.source}, assumed from the parameter count", guessed=True)
    heads = max(1, hidden // 128)
    return replace(ref, hidden=hidden, intermediate=int(round(hidden * ratio / 64)) * 64, heads=heads,
                   kv_heads=heads, source=f"Qwen1.5-1.8B proportions scaled to {params:.3g} parameters (assumed)",
                   guessed=True)


_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size", "num_attention_heads")


def _size(cfg: dict[str, Any], key: str, source: str) -> int:
    """A positive whole number from the config; anything else is a wrong-shaped config."""
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MemoryInputError(f"{source}: {key} is {value!r}; expected a positive whole number")
    return value


def shape_from_config(config: dict[str, Any], source: str = "config") -> Shape:
    """The shape from a Hugging Face ``config.json`` (text config of multimodal models included)."""
    cfg = config.get("text_config") or config
    if not isinstance(cfg, dict):
        raise MemoryInputError(f"{source}: text_config is {type(cfg).__name__}; expected a JSON object")
    missing = [key for key in _REQUIRED if key not in cfg]
    if missing:
        raise MemoryInputError(f"{source}: missing {missing[0]!r}; need {', '.join(_REQUIRED)}")
    heads = _size(cfg, "num_attention_heads", source)
    optional = {key: _size(cfg, key, source) for key in ("num_key_value_heads", "head_dim") if cfg.get(key) is not None}
    return Shape(
        hidden=_size(cfg, "hidden_size", source),
        intermediate=_size(cfg, "intermediate_size", source),
        layers=_size(cfg, "num_hidden_layers", source),
        vocab=_size(cfg, "vocab_size", source),
        heads=heads,
        kv_heads=optional.get("num_key_value_heads", heads),
        tied=bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", True))),
        qkv_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
        head_dim=optional.get("head_dim"),
        source=source,
    )


def load_config(path: Path, flag: str = "--model-config") -> Shape:
    """The shape from a config.json file; every failure names the flag and the path."""
    source = f"{flag} {path}"
    from compat.contract import ContractError
    from compat.harness.documents import load_json

    try:
        data = load_json(Path(path))
    except ContractError as exc:
        raise MemoryInputError(f"{flag} {exc}") from None
    if not isinstance(data, dict):
        raise MemoryInputError(f"{source}: expected a JSON object (a Hugging Face config.json), "
                               f"got {type(data).__name__}")
    return shape_from_config(data, source)

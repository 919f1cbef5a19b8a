"""How much memory KTO training needs, and what to change when it does not fit.

Host side: pure Python, no ML imports. ``python -m compat memory`` answers
the question users ask about the KTO example (a 1.8B model, batch 16, BF16,
a 24 GB card) with a breakdown, a verdict and ranked fixes.

The model of a training step (what KTOTrainer does, read from TRL's source):

1. a **no-grad policy forward over the KL batch** - the same prompts paired
   with other rows' completions, as many rows as the batch;
2. the **policy forward** with grad over the batch: activations and the
   autocast BF16 copies of the weights are saved for backward;
3. a **no-grad reference forward** over both batches (skipped with
   ``precompute_ref_log_probs``; with LoRA the reference is the policy with
   its adapters disabled, so no second copy of the weights is held);
4. **backward**, gradients growing as activations are freed;
5. the **optimizer step** (AdamW states are created at the first step).

The peak is the largest of four moments - end of the policy forward, the
reference forward, the start of backward, the optimizer step - and the
breakdown lists what is live at that moment, so its lines add up to the total.

Logits matter most for a large vocabulary. ``logits="full"`` is a trainer that
materialises batch x seq x vocab logits (accelerate returns them in FP32,
then log_softmax and the chosen/rejected slices copy them): the KTOTrainer of
the TRL 0.12 era. ``logits="chunked"`` is a trainer that computes per-token
log-probs through a fused, tiled LM head and never holds the full logits:
TRL 1.16.0's KTOTrainer. tests/calibration reads which one an installed
trainer is from its source.

Where the numbers come from. Weights, gradients and optimizer states are
byte counts. The per-token activation coefficients were measured with
autograd saved-tensor hooks on transformers 4.46.3 and 5.23.0 Llama layers
(CPU, SDPA attention): at hidden sizes 1024-2048 a decoder layer saves
34*hidden + 8*intermediate bytes per token under BF16 autocast over FP32
weights (the residual stream stays FP32), 24*hidden + 8*intermediate with
BF16 weights, 40*hidden + 16*intermediate in FP32, and about 12*hidden
more with grouped-query attention under autocast. The logits and transient coefficients are counts of the tensors
TRL's code keeps alive. tests/calibration trains real KTO steps on tiny
Llamas (1M-35M parameters, CPU) and checks the whole estimate against the
measured peak; nothing at 1.8B scale was measured here, so lines other than
the byte counts are marked ``estimate``. The CUDA overhead term (context,
allocator fragmentation) is a rule of thumb and was not measured at all.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

GiB = 2**30
MiB = 2**20

PRECISIONS = ("bf16", "fp16", "fp32")
WEIGHTS = ("fp32", "bf16", "fp16")
OPTIMS = ("adamw_torch", "adamw_torch_fused", "adamw_8bit")
LOGITS = ("full", "chunked")
DEVICES = ("cuda", "cpu")
_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}

# Per token, per decoder layer, bytes saved for backward: a*hidden + 8*intermediate (+ GQA surcharge).
_ACT_AUTOCAST_H = 34  # BF16 autocast over FP32 weights: FP32 residual stream and norms
_ACT_HALF_H = 24  # weights loaded in BF16/FP16
_ACT_FP32_H = 40  # no autocast, FP32 everywhere
_ACT_I = 8  # per intermediate unit with half-precision compute (16 in FP32)
_ACT_GQA_H = 12  # extra under autocast when key/value heads are shared (repeat_kv copies)
_NON_LAYER_H = 12  # final norm, LM-head input, per token

# Bytes per logit element (batch x seq x vocab) while the full logits are materialised.
_FULL_SAVED = 12  # FP32 logits + log_softmax output (saved) + chosen/rejected index copies
_FULL_REF = 12  # reference forward: its KL logits, completion logits and log_softmax, alive together
_FULL_KL = 4  # the policy's no-grad KL logits, alive until its forward returns
_FULL_BACKWARD = 10  # gather/log_softmax/slice gradients + the reference logits TRL leaves referenced

# The fused LM head (TRL 1.16.0): tiles of TOKENS x COLUMNS logits.
_CHUNK_TOKENS = 4096
_CHUNK_COLUMNS = 32768
# Bytes per tile element. CUDA runs a Triton kernel over one BF16 buffer; CPU falls
# back to torch ops that hold several FP32 temporaries of the tile at once.
_TILE_FORWARD = {"cuda": 2, "cpu": 18}
_TILE_BACKWARD = {"cuda": 2, "cpu": 30}

_CUDA_CONTEXT = 0.75 * GiB  # CUDA context + cuBLAS workspace: outside torch's allocator, inside the card
_CUDA_FRAGMENTATION = 0.10  # caching-allocator slack over the peak of live tensors

LORA_TARGETS = "all-linear"


class MemoryError_(ValueError):
    """Bad input for the estimator (e.g. an unreadable config JSON); the message says which."""


# --------------------------------------------------------------------------- model shape


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
        raise MemoryError_(f"{source}: missing {exc.args[0]!r}; need hidden_size, intermediate_size, "
                           "num_hidden_layers, vocab_size, num_attention_heads") from None
    except (TypeError, ValueError) as exc:
        raise MemoryError_(f"{source}: {exc}") from None
    return shape


def load_config(path: Path) -> Shape:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MemoryError_(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise MemoryError_(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MemoryError_(f"{path}: expected a JSON object")
    return shape_from_config(data, str(path))


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Setup:
    """One KTO training configuration on one device.

    ``precision`` is ``TrainingArguments(bf16=True)`` & co: autocast compute.
    ``weights`` is the dtype the model was *loaded* in. The KTO example script
    loads with ``from_pretrained`` and no dtype (TRL's ``ModelConfig.dtype``
    defaults to float32 in 1.16), so the default is FP32 weights under BF16
    autocast: the FP32 weights are the master copy, and autocast's BF16 copies
    of them are saved for backward. Loading in BF16 (``--dtype bfloat16``) makes
    weights, gradients and AdamW states BF16 with no FP32 master copy.
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

    def __post_init__(self) -> None:
        for name, value, allowed in (("precision", self.precision, PRECISIONS), ("weights", self.weights, WEIGHTS),
                                     ("optim", self.optim, OPTIMS), ("logits", self.logits, LOGITS),
                                     ("device", self.device, DEVICES)):
            if value not in allowed:
                raise MemoryError_(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        for name in ("batch_size", "seq_len", "grad_accum"):
            if getattr(self, name) < 1:
                raise MemoryError_(f"{name} must be at least 1")
        if self.lora_rank < 0 or self.gpu_gib <= 0:
            raise MemoryError_("lora_rank must be >= 0 and gpu_gib > 0")

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


@dataclass(frozen=True)
class Line:
    """One part of the peak. ``basis``: ``count`` (bytes x parameters) or ``estimate`` (modelled)."""

    name: str
    bytes: int
    basis: str
    note: str = ""


@dataclass(frozen=True)
class Estimate:
    setup: Setup
    phase: str  # the moment of the peak
    lines: tuple[Line, ...]
    phases: tuple[tuple[str, int], ...]  # every moment's total, for context

    @property
    def total(self) -> int:
        return sum(line.bytes for line in self.lines)

    @property
    def capacity(self) -> int:
        return int(self.setup.gpu_gib * GiB)

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    @property
    def headroom(self) -> int:
        """Bytes left on the device at the peak (negative: short by that much)."""
        return self.capacity - self.total


def _line(name: str, value: float, basis: str, note: str = "") -> Line:
    return Line(name, int(round(value)), basis, note)


def estimate(setup: Setup) -> Estimate:
    """Peak memory of one KTO training step: the largest of the step's four moments."""
    s, shape = setup, setup.shape
    params = s.total_params
    scale = params / shape.params  # a bare --params count spreads over the assumed shape
    wbytes = _BYTES[s.weights]
    lora = s.lora_rank > 0
    trainable = shape.lora_params(s.lora_rank) if lora else params
    tbytes = 4 if lora else wbytes  # PEFT keeps adapters in FP32
    tokens = s.batch_size * s.seq_len
    kl_tokens = s.batch_size * (s.kl_seq_len or s.seq_len)
    linear = (shape.layers * shape.layer_linear) * scale  # autocast copies: every Linear weight
    head = (shape.embedding if shape.tied else shape.lm_head) * scale  # the LM head's weight (tied: the embedding)

    policy = params * wbytes + (trainable * 4 if lora else 0)
    ref_held = not lora and not s.precompute_ref
    reference = params * wbytes if ref_held else 0
    state_bytes = 2 if s.optim == "adamw_8bit" else 2 * tbytes
    states = trainable * state_bytes
    grads_all = trainable * tbytes
    carry = grads_all if s.grad_accum > 1 else 0  # accumulated gradients live through the next micro-batch

    # Activations saved by the policy forward.
    act_i = _ACT_I
    if s.precision == "fp32":
        per_h, res, act_i = _ACT_FP32_H, 4, 2 * _ACT_I
    elif s.autocast:
        per_h, res = _ACT_AUTOCAST_H + (_ACT_GQA_H if shape.kv_heads < shape.heads else 0), 4
    else:
        per_h, res = _ACT_HALF_H, 2
    per_layer = per_h * shape.hidden + act_i * shape.intermediate  # bytes per token
    non_layer = tokens * _NON_LAYER_H * shape.hidden
    half = 2 if s.precision != "fp32" else 0
    chunked = s.logits == "chunked"
    head_copy = 0 if chunked else head  # the fused head casts tiles of the LM head and saves none
    if s.gradient_checkpointing:
        # Checkpointed layers keep only their inputs; backward recomputes one layer at a time, with
        # its activations and its autocast weight copies.
        activations = shape.layers * tokens * shape.hidden * res + non_layer
        activations_bwd = activations + tokens * per_layer
        copies = half * head_copy if s.autocast else 0
        copies_bwd = copies + (half * shape.layer_linear * scale if s.autocast else 0)
    else:
        activations = activations_bwd = shape.layers * tokens * per_layer + non_layer
        copies = copies_bwd = half * (linear + head_copy) if s.autocast else 0  # BF16 weights saved
    working_set = tokens * per_layer  # one layer's tensors in a no-grad forward

    if chunked:
        columns = _CHUNK_COLUMNS if s.device == "cuda" else min(shape.vocab, _CHUNK_COLUMNS)
        def tile(n: int) -> int:
            return min(n, _CHUNK_TOKENS) * columns
        logits_saved = 0
        logits_kl = 0
        logits_ref = tile(max(tokens, kl_tokens)) * _TILE_FORWARD[s.device]
        logits_bwd = tile(tokens) * _TILE_BACKWARD[s.device] + tokens * shape.hidden * 4
        # The fused head accumulates the LM head's gradient in FP32: for FP32 weights that is the gradient
        # itself (counted with the gradients), for half-precision weights an extra buffer; LoRA trains no head.
        head_grad = head * 4 if not lora and wbytes != 4 else 0
    else:
        logits_saved = tokens * shape.vocab * _FULL_SAVED
        logits_kl = kl_tokens * shape.vocab * _FULL_KL
        logits_ref = max(tokens, kl_tokens) * shape.vocab * _FULL_REF
        logits_bwd = tokens * shape.vocab * _FULL_BACKWARD
        head_grad = 0
    ref_copies = half * (linear + head) if s.autocast else 0  # the reference's autocast copies, transient
    lm_grad = 0 if lora else head * tbytes  # the first gradient backward produces
    step_temp = trainable * tbytes if (s.optim == "adamw_torch" and s.device == "cuda") else 0  # foreach sqrt

    act_note = f"{shape.layers} layers x {tokens} tokens" + (", checkpointed" if s.gradient_checkpointing else "")
    kl_note = "no-grad forwards: KL batch (policy) and both batches (reference)"
    logits_note = f"{'chunked LM head' if chunked else 'batch x seq x vocab'}, {tokens} tokens x vocab {shape.vocab}"
    base = [
        _line(f"policy weights ({s.weights})" + (f" + LoRA r={s.lora_rank} adapters (fp32)" if lora else ""),
              policy, "count"),
        _line(f"reference model ({s.weights})", reference, "count",
              "none: LoRA disables adapters for the reference" if lora else
              "none: reference log-probs precomputed" if s.precompute_ref else "a second full copy"),
        _line(f"optimizer states ({'AdamW 8-bit' if s.optim == 'adamw_8bit' else 'AdamW'}, 2 per trainable param)",
              states, "count", f"{trainable:,} trainable parameters"),
    ]

    def moment(grads: float, saved: float, transient: float, logits: float, copies_: float, extra: float = 0) -> list[Line]:
        lines = base + [
            _line("gradients", grads, "count",
                  "all" if grads == grads_all else "LM head's, at the start of backward" if grads else
                  "none live: zero_grad(set_to_none=True) after each step"),
            _line("activations: policy forward (saved for backward)", saved, "estimate",
                  act_note if saved else "freed"),
            _line("activations: autocast bf16 weight copies", copies_, "estimate",
                  "saved for backward" if copies_ else "none kept: checkpointed layers recompute them"
                  if s.autocast else "none: no autocast over fp32 weights"),
            _line("activations: KL batch + reference forward (no grad)", transient, "estimate", kl_note),
            _line("logits", logits, "estimate", logits_note),
            _line("optimizer step temporaries", extra, "estimate", "foreach AdamW's sqrt buffer" if extra else ""),
        ]
        tensors = sum(line.bytes for line in lines)
        overhead = (_CUDA_CONTEXT + _CUDA_FRAGMENTATION * tensors) if s.device == "cuda" else 0
        return lines + [_line("framework overhead", overhead, "estimate",
                              "CUDA context + 10% allocator fragmentation; not measured" if s.device == "cuda"
                              else "cpu: no CUDA context")]

    moments: dict[str, list[Line]] = {
        "end of policy forward": moment(carry, activations, 0, logits_saved + logits_kl, copies),
        "backward start": moment(carry + lm_grad, activations_bwd, 0, logits_saved + logits_bwd + head_grad, copies_bwd),
        "optimizer step": moment(grads_all, 0, 0, 0, 0, step_temp),
    }
    if not s.precompute_ref:
        moments["reference forward"] = moment(carry, activations, ref_copies + working_set, logits_saved + logits_ref, copies)
    totals = {name: sum(line.bytes for line in lines) for name, lines in moments.items()}
    peak = max(totals, key=lambda name: totals[name])
    return Estimate(setup, peak, tuple(moments[peak]), tuple(sorted(totals.items(), key=lambda kv: -kv[1])))


# --------------------------------------------------------------------------- fixes


@dataclass(frozen=True)
class Fix:
    """One change to the run and what it does to the peak."""

    key: str
    change: str  # what to set, in the trainer's own terms
    setup: Setup
    total: int
    saving: int
    fits: bool
    caveat: str = ""


def _divisors_below(n: int) -> list[int]:
    return [d for d in range(n - 1, 0, -1) if n % d == 0]


def _candidates(setup: Setup) -> list[tuple[str, str, Setup, str]]:
    """Single changes that can lower the peak: (key, change, new setup, caveat)."""
    out: list[tuple[str, str, Setup, str]] = []
    if not setup.gradient_checkpointing:
        out.append(("gradient_checkpointing", "gradient_checkpointing=True",
                    replace(setup, gradient_checkpointing=True), "about 30% more compute per step"))
    if setup.lora_rank == 0:
        out.append(("lora", f"LoRA r=16 on {LORA_TARGETS}, ref_model=None (peft_config / --use_peft --lora_r 16)",
                    replace(setup, lora_rank=16), "trains adapters, not the full model"))
    if not setup.precompute_ref and setup.lora_rank == 0:
        out.append(("precompute_ref", "precompute_ref_log_probs=True and ref_model=None",
                    replace(setup, precompute_ref=True), "one extra no-grad pass over the data before training"))
    if setup.optim != "adamw_8bit":
        out.append(("adamw_8bit", 'optim="adamw_bnb_8bit" (bitsandbytes)', replace(setup, optim="adamw_8bit"),
                    "8-bit AdamW states"))
    if setup.weights == "fp32":
        caveat = ("no fp32 master weights: with KTO's small learning rates (~1e-6) many BF16 updates round to "
                  "nothing; fine for LoRA (adapters stay fp32)")
        out.append(("bf16_weights", 'load the model in bf16 (torch_dtype=torch.bfloat16 / --dtype bfloat16)',
                    replace(setup, weights="bf16" if setup.precision != "fp16" else "fp16"), caveat))
    if setup.logits == "full":
        out.append(("chunked_logits", "a TRL whose KTOTrainer uses the fused, chunked LM head (measured: 1.16.0)",
                    replace(setup, logits="chunked"), "upgrade TRL"))
    return out


def _batch_fix(setup: Setup) -> tuple[str, str, Setup, str] | None:
    """Smaller per-device batch, same effective batch: the largest that fits, else 1."""
    options = _divisors_below(setup.batch_size)
    if not options:
        return None
    chosen = next((b for b in options if _fits(_with_batch(setup, b))), options[-1])
    new = _with_batch(setup, chosen)
    return ("batch", f"per_device_train_batch_size={chosen}, gradient_accumulation_steps={new.grad_accum}",
            new, "same effective batch; fewer rows per step for the KL estimate")


def _with_batch(setup: Setup, batch: int) -> Setup:
    return replace(setup, batch_size=batch, grad_accum=setup.effective_batch // batch)


def _fits(setup: Setup) -> bool:
    return estimate(setup).fits


def fixes(setup: Setup) -> list[Fix]:
    """Each single change that lowers the peak, largest saving first."""
    before = estimate(setup).total
    found = []
    batch = _batch_fix(setup)
    for key, change, new, caveat in _candidates(setup) + ([batch] if batch else []):
        after = estimate(new)
        if after.total < before:
            found.append(Fix(key, change, new, after.total, before - after.total, after.fits, caveat))
    return sorted(found, key=lambda f: (-f.saving, f.key))


# Preference when several combinations fit: cheapest in compute and fidelity first.
_COST = {"precompute_ref": 1, "chunked_logits": 1, "gradient_checkpointing": 2, "batch": 2, "adamw_8bit": 3,
         "lora": 4, "bf16_weights": 4}


@dataclass(frozen=True)
class Combination:
    keys: tuple[str, ...]
    changes: tuple[str, ...]
    setup: Setup
    total: int
    fits: bool


def combination(setup: Setup, exclude: frozenset[str] = frozenset()) -> Combination | None:
    """The fewest (then cheapest) changes that make the run fit, or None if even all of them do not.

    Tries every subset of the single fixes; the batch fix is applied last so
    it picks the largest per-device batch that fits with the others in place.
    ``exclude`` names fixes not to use (e.g. ``{"batch"}`` keeps the per-device batch,
    ``{"lora"}`` keeps full fine-tuning).
    """
    if estimate(setup).fits:
        return None
    singles = [c for c in _candidates(setup) if c[0] not in exclude]
    best: tuple[tuple[int, int, int], Combination] | None = None
    for n in range(0, len(singles) + 1):
        for subset in itertools.combinations(singles, n):
            new = setup
            for _, _, changed, _ in subset:
                new = _merge(new, changed, setup)
            keys = [k for k, _, _, _ in subset]
            changes = [c for _, c, _, _ in subset]
            if not _fits(new):
                batch = None if "batch" in exclude else _batch_fix(new)
                if batch is None or not _fits(batch[2]):
                    continue
                keys.append("batch")
                changes.append(batch[1])
                new = batch[2]
            rank = (len(keys), sum(_COST[k] for k in keys), -new.batch_size)
            if best is None or rank < best[0]:
                best = (rank, Combination(tuple(keys), tuple(changes), new, estimate(new).total, True))
        if best is not None:
            return best[1]
    return None


def _merge(current: Setup, changed: Setup, original: Setup) -> Setup:
    """Apply the fields ``changed`` altered relative to ``original`` onto ``current``."""
    updates = {f: getattr(changed, f) for f in Setup.__dataclass_fields__ if getattr(changed, f) != getattr(original, f)}
    return replace(current, **updates)


def all_fixes(setup: Setup) -> Setup:
    """Every single fix at once, batch 1 (the floor of what these knobs reach)."""
    new = setup
    for _, _, changed, _ in _candidates(setup):
        new = _merge(new, changed, setup)
    return _with_batch(new, 1)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Report:
    estimate: Estimate
    fixes: tuple[Fix, ...]
    combination: Combination | None
    keeping_batch: Combination | None  # the fewest changes that fit without touching the per-device batch
    keeping_full: Combination | None  # ... without LoRA
    floor: Estimate  # every fix at once
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        s = e.setup

        def setup_dict(x: Setup) -> dict[str, Any]:
            d = asdict(x)
            d["shape"] = asdict(x.shape) | {"params": x.shape.params}
            d["total_params"] = x.total_params
            return d

        def combo(c: Combination | None) -> dict[str, Any] | None:
            return None if c is None else {"keys": list(c.keys), "changes": list(c.changes), "total_bytes": c.total,
                                           "setup": setup_dict(c.setup)}

        return {
            "setup": setup_dict(s),
            "peak_phase": e.phase,
            "breakdown": [asdict(line) for line in e.lines],
            "total_bytes": e.total,
            "total_gib": round(e.total / GiB, 2),
            "capacity_bytes": e.capacity,
            "fits": e.fits,
            "headroom_bytes": e.headroom,
            "phases": {name: total for name, total in e.phases},
            "fixes": [{"key": f.key, "change": f.change, "saving_bytes": f.saving, "total_bytes": f.total,
                       "fits": f.fits, "caveat": f.caveat} for f in self.fixes],
            "combination": combo(self.combination),
            "combination_keeping_batch": combo(self.keeping_batch),
            "combination_keeping_full_fine_tune": combo(self.keeping_full),
            "floor_bytes": self.floor.total,
            "calibration": CALIBRATION_NOTE,
            "notes": list(self.notes),
        }


CALIBRATION_NOTE = ("estimate: not calibrated at this scale. Lines marked 'estimate' are modelled; "
                    "tests/calibration checks the whole estimate against real BF16 KTO steps on CPU "
                    "for tiny Llamas (1M-35M parameters) only, within 20% (or 24 MiB). Byte counts "
                    "(weights, gradients, optimizer states) are exact for the parameter count given; "
                    "the CUDA overhead line was not measured at all.")


def report(setup: Setup) -> Report:
    notes = []
    if setup.params is not None and setup.params != setup.shape.params:
        notes.append(f"weights use the {setup.params:,} parameters given; activations and logits use the "
                     f"shape ({setup.shape.params:,} parameters)")
    return Report(estimate(setup), tuple(fixes(setup)), combination(setup), combination(setup, frozenset({"batch"})),
                  combination(setup, frozenset({"lora"})) if setup.lora_rank == 0 else None,
                  estimate(all_fixes(setup)), tuple(notes))


def gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if abs(n) >= GiB else f"{n / MiB:.0f} MiB"


def render(r: Report) -> str:
    e, s = r.estimate, r.estimate.setup
    shape = s.shape
    out = []
    out.append(f"KTO training memory ({s.device}), peak at: {e.phase}")
    params = f"{s.total_params / 1e9:.2f}B" if s.total_params >= 1e8 else f"{s.total_params / 1e6:.2f}M"
    out.append(f"  model: {params} parameters; shape: {shape.describe()} [{shape.source}]")
    mode = (f"{s.precision} autocast over {s.weights} weights" if s.autocast else
            f"{s.precision} compute, {s.weights} weights")
    train = f"LoRA r={s.lora_rank}" if s.lora_rank else "full fine-tune"
    out.append(f"  run: batch {s.batch_size} x seq {s.seq_len} (+ KL batch {s.batch_size} x {s.kl_seq_len or s.seq_len}), "
               f"grad accum {s.grad_accum}, {mode}, {train}, {s.optim}")
    out.append(f"       gradient checkpointing {'on' if s.gradient_checkpointing else 'off'}, reference "
               f"{'precomputed' if s.precompute_ref else 'adapters off' if s.lora_rank else 'held'}, "
               f"logits {s.logits}")
    out.append("")
    width = max(len(line.name) for line in e.lines) + 2
    for line in e.lines:
        mark = "" if line.basis == "count" else "  (estimate)"
        note = f"  - {line.note}" if line.note and (line.bytes or line.note.startswith("none")) else ""
        out.append(f"  {line.name:<{width}}{gib(line.bytes):>10}{mark}{note}")
    out.append(f"  {'-' * (width + 10)}")
    out.append(f"  {'total at peak':<{width}}{gib(e.total):>10}")
    other = ", ".join(f"{name} {gib(total)}" for name, total in e.phases if name != e.phase)
    out.append(f"  other moments: {other}")
    out.append("")
    if s.device == "cpu":
        out.append("  (cpu: compare with peak resident memory; there is no GPU capacity to fit)")
    elif e.fits:
        out.append(f"VERDICT: fits on a {s.gpu_gib:g} GiB GPU with {gib(e.headroom)} headroom ({e.headroom / e.capacity:.0%}).")
    else:
        out.append(f"VERDICT: does NOT fit on a {s.gpu_gib:g} GiB GPU: needs {gib(e.total)}, short by {gib(-e.headroom)}.")
    if r.fixes and s.device != "cpu" and not e.fits:
        out.append("")
        out.append("Single changes, largest saving first:")
        for i, f in enumerate(r.fixes, 1):
            verdict = "fits" if f.fits else "still too big"
            out.append(f"  {i}. {f.change}")
            out.append(f"     saves {gib(f.saving)} -> {gib(f.total)} ({verdict}); {f.caveat}")
    if not e.fits and s.device != "cpu":
        out.append("")
        c = r.combination
        if c is None:
            out.append(f"No combination of these changes fits: all of them together still need {gib(r.floor.total)}.")
        else:
            lead = "The single change that fits" if len(c.keys) == 1 else "No single change fits; the fewest that do"
            out.append(f"{lead} ({gib(c.total)}, {gib(c.setup.gpu_gib * GiB - c.total)} headroom):")
            out += [f"  + {change}" for change in c.changes]
            for k, label in ((r.keeping_batch, f"per_device_train_batch_size={s.batch_size}"),
                             (r.keeping_full, "full fine-tuning (no LoRA)")):
                if k is not None and k.keys != c.keys:
                    out.append(f"Keeping {label} ({gib(k.total)}, {gib(k.setup.gpu_gib * GiB - k.total)} headroom):")
                    out += [f"  + {change}" for change in k.changes]
                elif k is None:
                    out.append(f"Keeping {label}: no combination of these changes fits.")
    for note in r.notes:
        out.append(f"note: {note}")
    out.append("")
    out.append(CALIBRATION_NOTE)
    return "\n".join(out)

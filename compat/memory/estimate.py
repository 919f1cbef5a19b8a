"""Peak memory of one KTO training step, line by line.

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
then log_softmax and the chosen/rejected slices copy them): older KTOTrainers.
``logits="chunked"`` is a trainer that computes per-token log-probs through a
fused, tiled LM head and never holds the full logits: newer KTOTrainers.
tests/calibration reads which one an installed trainer is from its source
(no TRL version is typed here: which TRL does what is measured, not assumed).

Where the numbers come from. Weights, gradients and optimizer states are
byte counts. The per-token activation coefficients were measured with
autograd saved-tensor hooks on the Llama layers of both calibration cells'
transformers (tests/calibration names the pairs; CPU, SDPA attention): at hidden sizes 1024-2048 a decoder layer saves
34*hidden + 8*intermediate bytes per token under BF16 autocast over FP32
weights (the residual stream stays FP32), 24*hidden + 8*intermediate with
BF16 weights, 40*hidden + 16*intermediate in FP32, and about 12*hidden
more with grouped-query attention under autocast. The logits and transient
coefficients are counts of the tensors TRL's code keeps alive. tests/calibration trains real KTO steps on tiny
Llamas (1M-35M parameters, CPU) and checks the whole estimate against the
measured peak; nothing at 1.8B scale was measured here, so lines other than
the byte counts are marked ``estimate``. The CUDA overhead term (context,
allocator fragmentation) is a rule of thumb and was not measured at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from .setup import Setup
from .states import model_states

GiB = 2**30
MiB = 2**20

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

# The fused LM head (newer KTOTrainers): tiles of TOKENS x COLUMNS logits.
_CHUNK_TOKENS = 4096
_CHUNK_COLUMNS = 32768
# Bytes per tile element. CUDA runs a Triton kernel over one BF16 buffer; CPU falls
# back to torch ops that hold several FP32 temporaries of the tile at once.
_TILE_FORWARD = {"cuda": 2, "cpu": 18}
_TILE_BACKWARD = {"cuda": 2, "cpu": 30}

_CUDA_CONTEXT = 0.75 * GiB  # CUDA context + cuBLAS workspace: outside torch's allocator, inside the card
_CUDA_FRAGMENTATION = 0.10  # caching-allocator slack over the peak of live tensors


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
    lora = s.lora_rank > 0
    st = model_states(s)
    tokens = s.batch_size * s.seq_len
    kl_tokens = s.batch_size * (s.kl_seq_len or s.seq_len)
    linear = (shape.layers * shape.layer_linear) * scale  # autocast copies: every Linear weight
    head = (shape.embedding if shape.tied else shape.lm_head) * scale  # the LM head's weight (tied: the embedding)

    grads_all = st.gradients
    # Under accumulation, .grad is one full-size buffer that every micro-batch's backward adds into;
    # it is created in the first micro-batch and lives until the optimizer step, so later micro-batches
    # run their forwards and backwards with all of it allocated.
    accumulating = s.grad_accum > 1
    carry = grads_all if accumulating else 0

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
        head_grad = head * 4 if not lora and s.weights in ("bf16", "fp16") else 0
    else:
        logits_saved = tokens * shape.vocab * _FULL_SAVED
        logits_kl = kl_tokens * shape.vocab * _FULL_KL
        logits_ref = max(tokens, kl_tokens) * shape.vocab * _FULL_REF
        logits_bwd = tokens * shape.vocab * _FULL_BACKWARD
        head_grad = 0
    ref_copies = half * (linear + head) if s.autocast else 0  # the reference's autocast copies, transient
    lm_grad = 0 if lora else head * st.grad_bytes  # the first gradient backward produces, full-size before any split
    foreach = s.optim == "adamw_torch" and s.device == "cuda"
    step_temp = st.trainable * st.grad_bytes / st.optimizer_split if foreach else 0  # foreach AdamW's sqrt buffer

    act_note = f"{shape.layers} layers x {tokens} tokens" + (", checkpointed" if s.gradient_checkpointing else "")
    kl_note = "no-grad forwards: KL batch (policy) and both batches (reference)"
    logits_note = f"{'chunked LM head' if chunked else 'batch x seq x vocab'}, {tokens} tokens x vocab {shape.vocab}"
    wsplit, osplit = st.share(st.weights_split), st.share(st.optimizer_split)
    base = [
        _line(f"policy weights ({s.weights})" + (f" + LoRA r={s.lora_rank} adapters (fp32)" if lora else ""),
              st.policy, "count", f"sharded: {s.shard} over {s.gpus} GPUs{wsplit}" if wsplit else ""),
        _line(f"reference model ({s.weights})", st.reference, "count",
              "none: LoRA disables adapters for the reference" if lora else
              "none: reference log-probs precomputed" if s.precompute_ref else "a second full copy" + wsplit),
        _line(f"optimizer states ({'AdamW 8-bit' if s.optim == 'adamw_8bit' else 'AdamW'}, 2 per trainable param)",
              st.optimizer, "count", f"{st.trainable:,} trainable parameters{osplit}"),
    ]

    held = (f"one full-size buffer{st.share(st.grads_split)}, summed into by each of the {s.grad_accum} "
            "micro-batches' backward")
    grad_name = f"gradients (accumulated over {s.grad_accum} micro-batches)" if accumulating else "gradients"
    grad_notes = {
        "forward": held if accumulating else "none live: zero_grad(set_to_none=True) after each step",
        "backward": (held + (" + the LM head's new gradient" if lm_grad else "")) if accumulating else
                    "the LM head's, at the start of backward" if lm_grad else "none live yet",
        "step": held if accumulating else "every trainable parameter's" + st.share(st.grads_split),
    }

    def moment(when: str, grads: float, saved: float, transient: float, logits: float, copies_: float,
               extra: float = 0) -> list[Line]:
        lines = list(base)
        if st.gathered:  # ZeRO-3/FSDP gather sharded weights for the forwards and backward, not for the step
            lines.append(_line("sharded weights gathered for compute", 0 if when == "step" else st.gathered,
                               "estimate", f"{s.shard}: about two layers + the LM head full-size at once"))
        lines += [
            _line(grad_name, grads, "count", grad_notes[when]),
            _line("activations: policy forward (saved for backward)", saved, "estimate",
                  act_note if saved else "none at this moment: backward freed them"),
            _line("activations: autocast bf16 weight copies", copies_, "estimate",
                  "saved for backward" if copies_ else ("none kept: checkpointed layers recompute them"
                  if s.gradient_checkpointing else "none at this moment: backward freed them")
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
        "end of policy forward": moment("forward", carry, activations, 0, logits_saved + logits_kl, copies),
        "backward start": moment("backward", carry + lm_grad, activations_bwd, 0,
                                 logits_saved + logits_bwd + head_grad, copies_bwd),
        "optimizer step": moment("step", grads_all, 0, 0, 0, 0, step_temp),
    }
    if not s.precompute_ref:
        moments["reference forward"] = moment("forward", carry, activations, ref_copies + working_set,
                                              logits_saved + logits_ref, copies)
    totals = {name: sum(line.bytes for line in lines) for name, lines in moments.items()}
    peak = max(totals, key=lambda name: totals[name])
    return Estimate(setup, peak, tuple(moments[peak]), tuple(sorted(totals.items(), key=lambda kv: -kv[1])))


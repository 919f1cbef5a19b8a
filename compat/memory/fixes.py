"""What to change when the run does not fit: single fixes, and recipes (combinations) that fit.

Recipes are ranked by what they cost the training, not just by how many
changes they make: first by their worst caveat, then by the sum of their
caveats, then by their count. A recipe that would quietly break the training
is not offered at all: full fine-tuning with bf16 master weights, where KTO's
~1e-6 updates round to nothing (LoRA over a bf16 base is fine: the adapters
it trains stay fp32). That holds when the run given already has them: its
full fine-tune recipes load the model in fp32 under autocast instead.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace

from .estimate import estimate
from .setup import Setup

LORA_TARGETS = "all-linear"

# Caveat severity: how much a change alters what the training computes.
SAME = 0  # same training, more time or setup: checkpointing, precomputed reference log-probs
SMALL = 1  # small numeric change: 8-bit optimizer states, fewer rows per KL estimate, another TRL release
METHOD = 2  # trains something else: LoRA adapters instead of the model
QUANTISED = 3  # trains adapters over a 4-bit copy of the model (QLoRA): policy and reference both change
SEVERITY_NAMES = {SAME: "same training", SMALL: "small numeric change", METHOD: "trains adapters, not the model",
                  QUANTISED: "adapters over a 4-bit base"}

# Last tie-break between recipes with equal caveats: cheaper in compute first.
_COST = {"precompute_ref": 1, "chunked_logits": 1, "gradient_checkpointing": 2, "batch": 2, "zero2": 2,
         "adamw_8bit": 3, "zero3": 3, "fsdp": 3, "lora": 4, "bf16_weights": 4, "qlora": 5, "fp32_master": 1}
_UNCALIBRATED = "an estimate, not calibrated on real runs"

_BF16_MASTER = ("bf16 master weights for a full fine-tune: at KTO's learning rates (~5e-7..1e-6) most updates "
                "round to nothing in bf16 weights")


@dataclass(frozen=True)
class Change:
    """A candidate change: what to set, the setup it gives, and what it costs the training."""

    key: str
    change: str  # what to set, in the trainer's own terms
    setup: Setup
    caveat: str
    severity: int


@dataclass(frozen=True)
class Fix:
    """One change to the run and what it does to the peak."""

    key: str
    change: str
    setup: Setup
    total: int
    saving: int
    fits: bool
    caveat: str = ""
    severity: int = SAME


@dataclass(frozen=True)
class Combination:
    """A recipe: changes that together make the run fit."""

    keys: tuple[str, ...]
    changes: tuple[str, ...]
    setup: Setup
    total: int
    fits: bool
    caveats: tuple[str, ...] = ()
    severity: int = SAME  # the worst caveat's
    severities: tuple[int, ...] = ()  # each change's, in the order of ``keys``

    @property
    def full_fine_tune(self) -> bool:
        return self.setup.lora_rank == 0


def _candidates(setup: Setup) -> list[Change]:
    """Single changes that can lower the peak."""
    s, out = setup, []
    if not s.gradient_checkpointing:
        out.append(Change("gradient_checkpointing", "gradient_checkpointing=True",
                          replace(s, gradient_checkpointing=True), "about 30% more compute per step", SAME))
    if s.weights != "nf4":
        out.append(Change("qlora", f"QLoRA: load_in_4bit=True, bnb_4bit_quant_type='nf4', LoRA r={s.lora_rank or 16} "
                          f"on {LORA_TARGETS}, ref_model=None (--load_in_4bit --use_peft --lora_r {s.lora_rank or 16})",
                          replace(s, weights="nf4", lora_rank=s.lora_rank or 16),
                          f"trains adapters over a 4-bit quantised base (policy and reference); {_UNCALIBRATED}",
                          QUANTISED))
    if s.lora_rank == 0:
        out.append(Change("lora", f"LoRA r=16 on {LORA_TARGETS}, ref_model=None (peft_config / --use_peft --lora_r 16)",
                          replace(s, lora_rank=16), "trains adapters, not the full model", METHOD))
    if not s.precompute_ref and s.lora_rank == 0:
        out.append(Change("precompute_ref", "precompute_ref_log_probs=True and ref_model=None",
                          replace(s, precompute_ref=True), "one extra no-grad pass over the data before training",
                          SAME))
    if s.optim != "adamw_8bit":
        out.append(Change("adamw_8bit", 'optim="adamw_bnb_8bit" (bitsandbytes)', replace(s, optim="adamw_8bit"),
                          "8-bit AdamW states: a small loss of optimizer precision", SMALL))
    if s.weights == "fp32":
        # Only ever part of a LoRA recipe (see _disqualified): the frozen base in bf16, the adapters fp32.
        out.append(Change("bf16_weights", "load the base model in bf16 (torch_dtype=torch.bfloat16 / --dtype bfloat16)",
                          replace(s, weights="bf16" if s.precision != "fp16" else "fp16"),
                          "frozen base weights in bf16; the LoRA adapters stay fp32", SAME))
    if s.weights in ("bf16", "fp16") and s.lora_rank == 0:
        # It costs memory, but a full fine-tune recipe must not keep half-precision master weights.
        out.append(Change("fp32_master", f"load the model in fp32 and train under {s.precision} autocast "
                          f"(torch_dtype=torch.float32, {s.precision}=True): an fp32 master copy",
                          replace(s, weights="fp32"), "fp32 master weights: more memory; KTO's small updates are kept",
                          SAME))
    if s.logits == "full":
        out.append(Change("chunked_logits",
                          "a TRL whose KTOTrainer computes log-probs through the fused, chunked LM head",
                          replace(s, logits="chunked"), "means installing a TRL release that has it",
                          SMALL))
    if s.gpus > 1 and s.shard == "none":
        launch = {"zero3": "DeepSpeed ZeRO-3 (accelerate launch --use_deepspeed --zero_stage 3)",
                  "fsdp": "FSDP full shard (accelerate launch --use_fsdp --fsdp_sharding_strategy FULL_SHARD)",
                  "zero2": "DeepSpeed ZeRO-2 (accelerate launch --use_deepspeed --zero_stage 2)"}
        out += [Change(key, f"{how} over the {s.gpus} GPUs", replace(s, shard=key),
                       f"more communication per step; {_UNCALIBRATED}", SAME) for key, how in launch.items()]
    return out


def _disqualified(original: Setup, new: Setup) -> str | None:
    """Why a changed setup must not be recommended at all, or None."""
    if new.lora_rank == 0 and new.weights in ("bf16", "fp16") and original.weights == "fp32":
        return _BF16_MASTER
    return None


def _half_master(setup: Setup) -> bool:
    """A full fine-tune over bf16/fp16 master weights: never the result of a recipe, even when given."""
    return setup.lora_rank == 0 and setup.weights in ("bf16", "fp16")


def disqualified_note(setup: Setup, fits: bool) -> list[str]:
    """What the report says about the disqualified change: not offered, or a warning about the setup given."""
    if setup.lora_rank == 0 and setup.weights in ("bf16", "fp16"):
        return [f"as given: {_BF16_MASTER}; loading in fp32 under {setup.precision} autocast keeps an fp32 master copy, "
                "so the full fine-tune recipes do that"]
    if setup.lora_rank == 0 and setup.weights == "fp32" and not fits:
        return [f"not offered: {_BF16_MASTER} (loading the base in bf16 is offered only together with LoRA)"]
    return []


# Changes that cannot go together.
_CONFLICTS = (frozenset({"lora", "qlora"}), frozenset({"qlora", "bf16_weights"}), frozenset({"qlora", "fp32_master"}),
              frozenset({"lora", "fp32_master"}),
              frozenset({"zero2", "zero3", "fsdp"}))


def _compatible(keys: set[str]) -> bool:
    return not any(len(keys & group) > 1 for group in _CONFLICTS)


def _smaller_batches(setup: Setup, min_batch: int) -> list[int]:
    """Per-device batches below the current one that keep the effective batch exact, largest first."""
    return list(_divisors_below((setup.batch_size, setup.grad_accum), setup.batch_size, min_batch))


def _prime_factors(k: int) -> dict[int, int]:
    found: dict[int, int] = {}
    p = 2
    while p * p <= k:
        while k % p == 0:
            found[p] = found.get(p, 0) + 1
            k //= p
        p += 1
    if k > 1:
        found[k] = found.get(k, 0) + 1
    return found


@functools.lru_cache(maxsize=64)
def _divisors_below(factors: tuple[int, ...], top: int, low: int) -> tuple[int, ...]:
    """Divisors in [low, top) of the product of ``factors``, largest first. Built from each factor's
    primes (trial division to the square root of a factor, not of the product), so a million-row
    batch with a million accumulation steps costs milliseconds, not a scan of every smaller batch."""
    exponents: dict[int, int] = {}
    for k in factors:
        for p, e in _prime_factors(k).items():
            exponents[p] = exponents.get(p, 0) + e
    divisors = [1]
    for p, e in exponents.items():
        divisors = [d * p**i for d in divisors for i in range(e + 1) if d * p**i < top]
    return tuple(sorted((d for d in divisors if low <= d), reverse=True))


def _with_batch(setup: Setup, batch: int) -> Setup:
    return replace(setup, batch_size=batch, grad_accum=setup.effective_batch // batch)


def _batch_fix(setup: Setup, min_batch: int) -> Change | None:
    """Smaller per-device batch, same effective batch: the largest that fits, else the smallest allowed.

    ``min_batch`` is 2 unless the findings measured KTOTrainer accepting batch 1 (compat/memory/facts.py).
    Memory grows with the per-device batch, so the largest that fits is found by bisection.
    """
    options = _smaller_batches(setup, min_batch)
    if not options:
        return None
    lo, hi = 0, len(options)  # options[lo:] hold the first that fits, if any
    while lo < hi:
        mid = (lo + hi) // 2
        if _fits(_with_batch(setup, options[mid])):
            hi = mid
        else:
            lo = mid + 1
    chosen = options[lo] if lo < len(options) else options[-1]
    new = _with_batch(setup, chosen)
    return Change("batch", f"per_device_train_batch_size={chosen}, gradient_accumulation_steps={new.grad_accum}",
                  new, "same effective batch; each micro-batch's KL estimate uses fewer rows", SMALL)


def _fits(setup: Setup) -> bool:
    return estimate(setup).fits


def fixes(setup: Setup, min_batch: int = 2) -> list[Fix]:
    """Each single change that lowers the peak (and may be recommended), largest saving first."""
    before = estimate(setup).total
    found = []
    batch = _batch_fix(setup, min_batch)
    for c in _candidates(setup) + ([batch] if batch else []):
        after = estimate(c.setup)
        if after.total < before and _disqualified(setup, c.setup) is None:
            found.append(Fix(c.key, c.change, c.setup, after.total, before - after.total, after.fits, c.caveat,
                             c.severity))
    return sorted(found, key=lambda f: (-f.saving, f.key))


def _merge(current: Setup, changed: Setup, original: Setup) -> Setup:
    """Apply the fields ``changed`` altered relative to ``original`` onto ``current``."""
    updates = {f: getattr(changed, f) for f in Setup.__dataclass_fields__
               if getattr(changed, f) != getattr(original, f)}
    return replace(current, **updates)


def _rank(c: Combination) -> tuple[int, int, int, int, int]:
    """Worst caveat, then all caveats together, then how many changes, then compute, then larger batch."""
    return (c.severity, sum(c.severities), len(c.keys), sum(_COST.get(k, 3) for k in c.keys), -c.setup.batch_size)


def _recipe(original: Setup, subset: tuple[Change, ...], min_batch: int, allow_batch: bool) -> Combination | None:
    """The subset applied together (plus a smaller batch if that is what it takes), if that fits."""
    new = original
    for c in subset:
        new = _merge(new, c.setup, original)
    chosen = list(subset)
    if not _fits(new):
        batch = _batch_fix(new, min_batch) if allow_batch else None
        if batch is None or not _fits(batch.setup):
            return None
        chosen.append(batch)
        new = batch.setup
    if _disqualified(original, new) or _half_master(new):
        return None
    return Combination(tuple(c.key for c in chosen), tuple(c.change for c in chosen), new, estimate(new).total, True,
                       tuple(c.caveat for c in chosen), max((c.severity for c in chosen), default=SAME),
                       tuple(c.severity for c in chosen))


def recipes(setup: Setup, min_batch: int = 2, exclude: frozenset[str] = frozenset()) -> list[Combination]:
    """Every minimal recipe that fits, best first (see ``_rank``); empty when the run already fits.

    Tries every compatible subset of the single changes; the batch change is applied
    last so it picks the largest per-device batch that fits with the others in place.
    A recipe whose changes include a smaller recipe that fits is dropped: the extra
    changes buy nothing. ``exclude`` names changes not to use (e.g. ``{"batch"}``
    keeps the per-device batch, ``{"lora"}`` keeps full fine-tuning).
    """
    if _fits(setup):
        return []
    singles = [c for c in _candidates(setup) if c.key not in exclude]
    found = []
    for n in range(len(singles) + 1):
        for subset in itertools.combinations(singles, n):
            if _compatible({c.key for c in subset}):
                r = _recipe(setup, subset, min_batch, allow_batch="batch" not in exclude)
                if r is not None:
                    found.append(r)
    minimal = [r for r in found if not any(set(o.keys) < set(r.keys) for o in found)]
    return sorted(minimal, key=_rank)


def combination(setup: Setup, exclude: frozenset[str] = frozenset(), min_batch: int = 2) -> Combination | None:
    """The best recipe (fewest and mildest caveats) that fits, or None if none does."""
    found = recipes(setup, min_batch, exclude)
    return found[0] if found else None


def all_fixes(setup: Setup, min_batch: int = 2) -> Setup:
    """Every compatible change at once, at the smallest allowed batch: the floor of what these knobs reach."""
    new, keys = setup, set[str]()
    for c in _candidates(setup):
        if c.key == "fp32_master":  # raises the peak: not a knob towards the floor
            continue
        if _compatible(keys | {c.key}) and not _disqualified(setup, _merge(new, c.setup, setup)):
            new, keys = _merge(new, c.setup, setup), keys | {c.key}
    smaller = _smaller_batches(new, min_batch)
    return _with_batch(new, smaller[-1]) if smaller else new

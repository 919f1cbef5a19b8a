"""What to change when the run does not fit: single fixes and combinations of them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from .estimate import Setup, estimate

LORA_TARGETS = "all-linear"


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


def _smaller_batches(setup: Setup, min_batch: int) -> list[int]:
    """Per-device batches below the current one that keep the effective batch exact, largest first."""
    n = setup.effective_batch
    return [d for d in range(setup.batch_size - 1, min_batch - 1, -1) if n % d == 0]


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
        out.append(("chunked_logits", "a TRL whose KTOTrainer computes log-probs through the fused, chunked LM head (newer TRL)",
                    replace(setup, logits="chunked"), "upgrade TRL"))
    return out


def _batch_fix(setup: Setup, min_batch: int) -> tuple[str, str, Setup, str] | None:
    """Smaller per-device batch, same effective batch: the largest that fits, else the smallest allowed.

    ``min_batch`` is 2 unless the findings measured KTOTrainer accepting batch 1 (compat/memory/facts.py).
    """
    options = _smaller_batches(setup, min_batch)
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


def fixes(setup: Setup, min_batch: int = 2) -> list[Fix]:
    """Each single change that lowers the peak, largest saving first."""
    before = estimate(setup).total
    found = []
    batch = _batch_fix(setup, min_batch)
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


def combination(setup: Setup, exclude: frozenset[str] = frozenset(), min_batch: int = 2) -> Combination | None:
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
                batch = None if "batch" in exclude else _batch_fix(new, min_batch)
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


def all_fixes(setup: Setup, min_batch: int = 2) -> Setup:
    """Every single fix at once, at the smallest allowed batch (the floor of what these knobs reach)."""
    new = setup
    for _, _, changed, _ in _candidates(setup):
        new = _merge(new, changed, setup)
    smaller = _smaller_batches(new, min_batch)
    return _with_batch(new, smaller[-1]) if smaller else new

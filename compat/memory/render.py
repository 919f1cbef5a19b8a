"""The report: estimate, fixes and recipes together, as text or as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .estimate import Estimate, GiB, MiB, estimate
from .facts import NOT_READ, UNMEASURED, BatchOne, FusedHead
from .fixes import SEVERITY_NAMES, Combination, Fix, all_fixes, disqualified_note, fixes, recipes
from .setup import Setup

SHOWN_RECIPES = 3  # the best few; the ones keeping the batch or full fine-tuning are added if not among them


@dataclass(frozen=True)
class Report:
    estimate: Estimate
    fixes: tuple[Fix, ...]
    combination: Combination | None  # the best recipe
    keeping_batch: Combination | None  # the best recipe that does not touch the per-device batch
    keeping_full: Combination | None  # ... that keeps full fine-tuning (no LoRA)
    floor: Estimate  # every fix at once
    notes: tuple[str, ...] = field(default=())
    batch_one: BatchOne = UNMEASURED  # the measured floor on per-device batch for every recommendation
    recipes: tuple[Combination, ...] = ()  # every minimal recipe that fits, best first
    warnings: tuple[str, ...] = ()  # what makes the estimate itself less trustworthy
    fused_head: FusedHead = NOT_READ  # the TRL releases measured to have the fused, chunked LM head

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        s = e.setup

        def setup_dict(x: Setup) -> dict[str, Any]:
            d = asdict(x)
            d["shape"] = asdict(x.shape) | {"params": x.shape.params}
            d["total_params"] = x.total_params
            return d

        def combo(c: Combination | None) -> dict[str, Any] | None:
            return None if c is None else {
                "keys": list(c.keys), "changes": list(c.changes), "caveats": list(c.caveats),
                "severity": c.severity, "severities": list(c.severities), "full_fine_tune": c.full_fine_tune,
                "total_bytes": c.total, "setup": setup_dict(c.setup)}

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
                       "fits": f.fits, "caveat": f.caveat, "severity": f.severity} for f in self.fixes],
            "combination": combo(self.combination),
            "combination_keeping_batch": combo(self.keeping_batch),
            "combination_keeping_full_fine_tune": combo(self.keeping_full),
            "recipes": [combo(r) for r in self.recipes],
            "severity_scale": {str(k): v for k, v in SEVERITY_NAMES.items()},
            "floor_bytes": self.floor.total,
            "batch_size_one": {"status": self.batch_one.status, "citation": self.batch_one.citation,
                               "min_per_device_batch": self.batch_one.min_batch},
            "calibration": CALIBRATION_NOTE,
            "notes": list(self.notes),
            "shape_guessed": s.shape.guessed,
            "warnings": list(self.warnings),
            "fused_head": {"releases": list(self.fused_head.releases), "measured": list(self.fused_head.measured),
                           "words": self.fused_head.words()},
        }


CALIBRATION_NOTE = ("estimate: not calibrated at this scale. Lines marked 'estimate' are modelled; "
                    "tests/calibration checks the whole estimate against real BF16 KTO steps on CPU "
                    "for tiny Llamas (1M-35M parameters) only, within 20% (or 24 MiB). Byte counts "
                    "(weights, gradients, optimizer states) are exact for the parameter count given; "
                    "the CUDA overhead line was not measured at all.")


UNCALIBRATED_SETUP = ("QLoRA and ZeRO/FSDP sharding are estimates, not calibrated on real runs: 4-bit storage, "
                      "the split of states over GPUs and the gathered weights are byte counts and rules of thumb")


def report(setup: Setup, batch_one: BatchOne = UNMEASURED, fused_head: FusedHead = NOT_READ) -> Report:
    """Everything the command says; ``batch_one`` (from findings.json) bounds the per-device batch, and
    ``fused_head`` (also measured) names the TRL releases a recipe with the chunked LM head needs."""
    notes = []
    if setup.params is not None and setup.params != setup.shape.params:
        notes.append(f"weights use the {setup.params:,} parameters given; activations and logits use the "
                     f"shape ({setup.shape.params:,} parameters)")
    low = batch_one.min_batch
    base = setup  # what the recommendations start from: never a batch TRL refuses
    if setup.batch_size < low:
        base = replace(setup, batch_size=low, grad_accum=max(1, setup.effective_batch // low))
        notes.append(f"per_device_train_batch_size={setup.batch_size} as given, but KTOTrainer's default loss "
                     f"needs at least {low} rows for its KL term where batch 1 is refused or unmeasured "
                     f"({batch_one.citation}); the fixes and recipes below start from {low}")
    peak = estimate(setup)
    notes += disqualified_note(setup, peak.fits)
    if setup.weights == "nf4" or setup.shard != "none":
        notes.append(UNCALIBRATED_SETUP)
    if setup.shard != "none" and setup.gpus == 1:
        notes.append(f"{setup.shard} over 1 GPU splits nothing; give --gpus N")
    warnings = []
    if setup.shape.guessed:
        how = "from the parameter count" if setup.params is not None else "as the KTO example's model"
        warnings.append(f"shape guessed {how}, not read from the model; activations and logits depend on it: "
                        "pass --model-config config.json (the model's Hugging Face config) for the real shape")
    found = recipes(base, low)
    best = found[0] if found else None
    keeping_batch = next((r for r in found if "batch" not in r.keys), None)
    keeping_full = next((r for r in found if r.full_fine_tune), None) if setup.lora_rank == 0 else None
    return Report(peak, tuple(fixes(base, low)), best, keeping_batch, keeping_full,
                  estimate(all_fixes(base, low)), tuple(notes), batch_one, tuple(found), tuple(warnings), fused_head)


def gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if abs(n) >= GiB else f"{n / MiB:.0f} MiB"


def _describe(c: Combination) -> str:
    s = c.setup
    train = "full fine-tune" if c.full_fine_tune else f"{'QLoRA' if s.weights == 'nf4' else 'LoRA'} r={s.lora_rank}"
    train += f", {s.shard} over {s.gpus} GPUs" if s.shard != "none" else ""
    return (f"{train}, batch {s.batch_size} x accum {s.grad_accum}: {gib(c.total)} "
            f"({gib(s.gpu_gib * GiB - c.total)} headroom); worst caveat: {SEVERITY_NAMES[c.severity]}")


def _render_recipes(r: Report) -> list[str]:
    if r.combination is None:
        return [f"No combination of these changes fits: all of them together still need {gib(r.floor.total)}."]
    shown = list(r.recipes[:SHOWN_RECIPES])
    shown += [k for k in (r.keeping_batch, r.keeping_full) if k is not None and k not in shown]
    out = ["Recipes that fit, best first (ranked by their worst caveat, then all caveats, then how many changes):"]
    for i, c in enumerate(shown, 1):
        out.append(f"  {i}. {_describe(c)}")
        out += [f"     + {_change(r, key, change)} - {caveat}"
                for key, change, caveat in zip(c.keys, c.changes, c.caveats, strict=True)]
    s = r.estimate.setup
    kept = r.keeping_batch.setup.batch_size if r.keeping_batch else max(s.batch_size, r.batch_one.min_batch)
    keeping = [(r.keeping_batch, f"per_device_train_batch_size={kept}")]
    if s.lora_rank == 0:  # a LoRA run has no full fine-tune to keep
        keeping.append((r.keeping_full, "full fine-tuning (no LoRA)"))
    for k, label in keeping:
        where = f"recipe {shown.index(k) + 1}" if k is not None else "no combination of these changes fits"
        out.append(f"Keeping {label}: {where}.")
    return out


def _change(r: Report, key: str, change: str) -> str:
    """A change as shown: one that needs a TRL feature names the measured releases that have it."""
    return f"{change}: {r.fused_head.words()}" if key == CHUNKED else change


CHUNKED = "chunked_logits"


def _verdict(r: Report) -> str:
    e, s = r.estimate, r.estimate.setup
    if s.device == "cpu":
        return (f"VERDICT: about {gib(e.total)} at peak ({e.phase}) on cpu: compare with the machine's memory "
                "(there is no GPU capacity to fit)")
    if e.fits:
        return (f"VERDICT: fits on a {s.gpu_gib:g} GiB GPU: {gib(e.total)} at peak ({e.phase}), {gib(e.headroom)} "
                f"headroom ({e.headroom / e.capacity:.0%}).")
    return (f"VERDICT: does NOT fit on a {s.gpu_gib:g} GiB GPU: needs {gib(e.total)} at peak ({e.phase}), short by "
            f"{gib(-e.headroom)}.")


def _run_line(s: Setup) -> str:
    mode = (f"{s.precision} autocast over {s.weights} weights" if s.autocast else
            f"{s.precision} compute, {s.weights} weights")
    train = (f"{'QLoRA' if s.weights == 'nf4' else 'LoRA'} r={s.lora_rank}" if s.lora_rank else "full fine-tune")
    if s.gpus > 1 or s.shard != "none":
        train += f", {s.gpus} GPUs ({'no sharding: each holds everything' if s.shard == 'none' else s.shard})"
    return f"batch {s.batch_size} x seq {s.seq_len}, grad accum {s.grad_accum}, {mode}, {train}, {s.optim}"


def summary(r: Report) -> str:
    """The answer first, in under 25 lines: the verdict, the best recipe that fits and the next two."""
    e, s = r.estimate, r.estimate.setup
    params = f"{s.total_params / 1e9:.2f}B" if s.total_params >= 1e8 else f"{s.total_params / 1e6:.2f}M"
    out = [_verdict(r), f"  for {params} parameters, {_run_line(s)}"]
    out += [f"  WARNING: {w}" for w in r.warnings]
    if s.device != "cpu" and not e.fits:
        if r.combination is None:
            out.append(f"No combination of the changes fits: all of them together still need {gib(r.floor.total)}.")
        else:
            for i, c in enumerate(r.recipes[:SHOWN_RECIPES], 1):
                out.append(f"{'Best recipe that fits' if i == 1 else f'Next, {i}'}: {_describe(c)}")
                out += [f"  + {_change(r, key, change)} ({caveat})"
                        for key, change, caveat in zip(c.keys, c.changes, c.caveats, strict=True)]
    out.append("--detail: the breakdown line by line, every single change, the notes and the calibration caveat. "
               "An estimate, not calibrated at this scale.")
    return "\n".join(out)


def render(r: Report) -> str:
    """The full report (--detail): the breakdown, the single changes, every recipe shown and the notes."""
    e, s = r.estimate, r.estimate.setup
    shape = s.shape
    out = []
    out.append(f"KTO training memory ({s.device}), peak at: {e.phase}")
    params = f"{s.total_params / 1e9:.2f}B" if s.total_params >= 1e8 else f"{s.total_params / 1e6:.2f}M"
    out.append(f"  model: {params} parameters; shape: {shape.describe()} [{shape.source}]")
    out += [f"  WARNING: {w}" for w in r.warnings]
    out.append(f"  run: {_run_line(s)} (+ KL batch {s.batch_size} x {s.kl_seq_len or s.seq_len})")
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
    out.append(_verdict(r))
    if s.device != "cpu" and not e.fits:
        floor = "may go down to 1" if r.batch_one.min_batch == 1 else f"kept >= {r.batch_one.min_batch}"
        out += ["", f"Per-device batch {floor}; gradient accumulation keeps the effective batch.",
                f"  why: {r.batch_one.citation}"]
        if r.fixes:
            out += ["", "Single changes, largest saving first:"]
            for i, f in enumerate(r.fixes, 1):
                verdict = "fits" if f.fits else "still too big"
                out.append(f"  {i}. {_change(r, f.key, f.change)}")
                out.append(f"     saves {gib(f.saving)} -> {gib(f.total)} ({verdict}); {f.caveat}")
        out += ["", *_render_recipes(r)]
    for note in r.notes:
        out.append(f"note: {note}")
    out.append("")
    out.append(CALIBRATION_NOTE)
    return "\n".join(out)

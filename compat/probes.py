"""The probe registry: every fact a cell measures about a pair, declared once.

A probe is one named measurement (which tokenizer keyword KTOTrainer takes,
where KTO imports from, ...). The cell suite records it with
``observe.probe(KEY, value)``; everything downstream iterates this tuple:
the host's result mapping, merge's conflict check, bisect's choices,
findings.json's facts, the JUnit testcases, the HTML page's probe colouring
and ``kto-compat check``. Adding a probe is one entry here plus the cell test
that records it.

Where a value sits in a cell of compat.json follows from its key: a key whose
first segment names a contract field (``keyword.tokenizer``, ``import_path``)
lives there; any other key lives under the cell's ``probes`` object.

Shared by host and cell code: plain data, no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["EVERY", "PROBES", "Probe", "by_key", "findings", "for_trainer"]

# A probe every trainer records (a new trainer spec needs no edit here).
EVERY: tuple[str, ...] = ()

_KEYWORD_STATES: Mapping[str, str] = {
    "accepted": "the trainer is built with it and the tokenizer lands in its processing_class",
    "deprecated": "accepted with a deprecation warning",
    "rejected": "construction raises TypeError",
    "untested": "not reached: an earlier stage failed",
}

_IMPORTABLE: Mapping[str, str] = {
    "importable": "imports in the cell's environment",
    "not importable": "absent, or fails to import, in the cell's environment",
}


@dataclass(frozen=True)
class Probe:
    """One measurement and everything the reports need to know about it."""

    key: str
    label: str  # JUnit testcase name, page and Markdown label
    about: str  # one line for legends and --help
    values: Mapping[str, str] = field(default_factory=dict)  # allowed value -> meaning; empty: free text
    good: frozenset[str] = frozenset()  # values that are fine (colouring, JUnit pass); empty: any measured value
    bisect: bool = True  # `kto-compat bisect --probe KEY` may search for where it changes
    finding: str | None = None  # the fact it becomes in findings.json, from compatible cells
    trainers: tuple[str, ...] = ("kto",)  # the trainers whose cells record it; EVERY (empty): every trainer
    unmeasured: frozenset[str] = frozenset({"untested"})  # values that mean "not measured" (bisect skips them)

    def allows(self, value: object) -> bool:
        if value is None:
            return True
        if not self.values:
            return isinstance(value, (str, int, float, bool))
        return value in self.values


PROBES: tuple[Probe, ...] = (
    Probe("import_path", "import_path", "the module KTOConfig/KTOTrainer import from without a forwarding shim",
          finding="import_path", trainers=EVERY),
    Probe("keyword.processing_class", "keyword[processing_class]", "the trainer built with processing_class=tokenizer",
          _KEYWORD_STATES, frozenset({"accepted", "deprecated"}), trainers=EVERY),
    Probe("keyword.tokenizer", "keyword[tokenizer]", "the trainer built with tokenizer=tokenizer",
          _KEYWORD_STATES, frozenset({"accepted", "deprecated"}), trainers=EVERY),
    Probe("deprecated_by.processing_class", "deprecated_by[processing_class]",
          "the function that emitted processing_class='s deprecation warning (when it is deprecated)",
          bisect=False, trainers=EVERY),
    Probe("deprecated_by.tokenizer", "deprecated_by[tokenizer]",
          "the function that emitted tokenizer='s deprecation warning: TRL's trainer or transformers' Trainer",
          bisect=False, trainers=EVERY),
    Probe("format_mode", "format_mode", "whether KTOTrainer applies chat templates to message-list rows itself",
          {"conversational": "the trainer templates message lists itself: pass them as they are",
           "text": "the trainer needs rows rendered to text first"},
          frozenset({"conversational", "text"}), finding="format_mode"),
    Probe("prompt_roles", "prompt_roles",
          "roles TRL's templating accepts as a conversational prompt's last turn (comma-separated)",
          finding="prompt_roles"),
    Probe("batch_size_one", "batch_size_one",
          "KTOTrainer built with per_device_train_batch_size=1 and its default loss (compat memory reads this)",
          {"accepted": "builds with one row per device: accumulation can reach any effective batch",
           "rejected": "refused at construction: KTO's KL term pairs rows within a batch, so it needs 2 or more"},
          frozenset({"accepted", "rejected"}), finding="batch_size_one"),
    Probe("config_fields", "config_fields",
          "which renamed or removed KTOConfig fields this pair's KTOConfig has (comma-separated)",
          bisect=False, finding="config_fields"),
    Probe("lm_head", "lm_head",
          "whether KTOTrainer computes log-probs through TRL's fused, chunked LM head (never the full logits)",
          {"fused": "the trainer's module calls TRL's add_fused_lm_head: logits are computed in tiles",
           "full": "the trainer computes the full logits"},
          frozenset({"fused", "full"}), finding="lm_head"),
    Probe("platform.device", "platform[device]", "the device the cell's torch offers (cuda when a GPU is visible)",
          {"cpu": "no CUDA device: the cell trained on the CPU", "cuda": "a CUDA device: the cell trained on it"},
          frozenset({"cpu", "cuda"}), bisect=False, trainers=EVERY),
    Probe("platform.triton", "platform[triton]",
          "whether triton imports beside the cell's torch (TRL loads its fused kernels only where it does)",
          _IMPORTABLE, frozenset(_IMPORTABLE), bisect=False, trainers=EVERY),
    Probe("platform.bitsandbytes", "platform[bitsandbytes]", "whether bitsandbytes imports in the cell's environment",
          _IMPORTABLE, frozenset(_IMPORTABLE), bisect=False, trainers=EVERY),
)


def by_key(key: str) -> Probe:
    for probe in PROBES:
        if probe.key == key:
            return probe
    raise KeyError(f"unknown probe {key!r}; one of {', '.join(p.key for p in PROBES)}")


def for_trainer(trainer: str) -> tuple[Probe, ...]:
    return tuple(p for p in PROBES if not p.trainers or trainer in p.trainers)


def findings() -> tuple[Probe, ...]:
    return tuple(p for p in PROBES if p.finding)

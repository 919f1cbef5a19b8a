"""How much memory KTO training needs, and what to change when it does not fit.

Host side: pure Python, no ML imports. ``python -m compat memory`` answers
the question users ask about the KTO example (a 1.8B model, batch 16, BF16,
a 24 GB card) with a breakdown, a verdict and ranked fixes.

One module per job: ``shape`` (the model's shape, from a config.json or
guessed from a parameter count), ``states`` (weights, optimizer states and
gradients per GPU, QLoRA and ZeRO/FSDP included), ``estimate`` (the peak of
one training step, line by line), ``facts`` (what findings.json measured
KTOTrainer to refuse), ``fixes`` (single changes and ranked recipes that fit),
``render`` (the report as text or JSON); ``setup`` is the configuration they all read.
The ``memory`` command lives with the other commands, in ``compat.cli.memory``.

The package re-exports ``estimate`` and ``fixes`` as functions, so
``compat.memory.estimate`` is the function; import the modules by their full
name (``importlib.import_module("compat.memory.fixes")``) when you need them.
"""

from __future__ import annotations

from .estimate import Estimate, GiB, Line, MiB, estimate
from .facts import UNMEASURED, BatchOne, batch_one, load_findings, parse_pair
from .fixes import LORA_TARGETS, Combination, Fix, all_fixes, combination, fixes, recipes
from .render import CALIBRATION_NOTE, Report, gib, render, report
from .setup import DEVICES, LOGITS, OPTIMS, PRECISIONS, WEIGHTS, Setup
from .shape import QWEN15_18B, MemoryInputError, Shape, load_config, parse_count, shape_for_params, shape_from_config

__all__ = [
    "CALIBRATION_NOTE", "DEVICES", "GiB", "LOGITS", "LORA_TARGETS", "MiB", "OPTIMS", "PRECISIONS", "QWEN15_18B",
    "UNMEASURED", "WEIGHTS", "BatchOne", "Combination", "Estimate", "Fix", "Line", "MemoryInputError", "Report",
    "Setup", "Shape", "all_fixes", "batch_one", "combination", "estimate", "fixes", "gib", "load_config",
    "load_findings", "parse_count", "parse_pair", "recipes", "render", "report", "shape_for_params",
    "shape_from_config",
]

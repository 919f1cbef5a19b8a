"""Checks every trainer's cell module runs: import, the keyword probe, training.

Not collected on its own (no ``test_`` prefix): each trainer's module imports
these functions, so pytest collects them there, under that trainer's
fixtures (conftest's ``spec``, ``discovery``, ``construction``). Every answer
is measured on the installed packages and recorded through ``observe``; a
test fails only when the pair cannot do the thing at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from compat.cell import runs
from compat.cell.trace import drift_of, first_line, raised_by
from compat.trainers import TrainerSpec


@pytest.mark.stage("import")
def test_import(discovery: Any, spec: TrainerSpec, observe: Any) -> None:
    """The trainer imports from some location; the real class is preferred over a forwarding shim."""
    for path, category, message in discovery.warnings:
        observe.warn("import", category, f"[{path}] {message}")
    observe.set("import_locations", {p: "shim" if p in discovery.shims else "real" for p in discovery.found})
    if not discovery.ok:
        assert discovery.error is not None
        observe.fail("import", discovery.error, drift=drift_of(discovery.error))
        pytest.fail(f"{spec.trainer_class} import failed: {first_line(discovery.error)}")
    observe.probe("import_path", discovery.path)


@pytest.mark.stage("construct")
def test_keyword_probe(disc: Any, construction: Any, spec: TrainerSpec, observe: Any) -> None:
    """Which tokenizer keyword builds the trainer, who refuses the other, and that the
    tokenizer handed in becomes the trainer's processing class."""
    attempts = list(construction.attempts.values())
    for a in attempts:
        state = a.state if a.landed or not a.built else "untested"
        observe.probe(f"keyword.{a.keyword}", state)
        for category, message, emitter in a.caught.items:
            observe.warn("construct", category, f"[{a.keyword}=] {message}", emitter)
        if a.error is not None:
            observe.merge("keyword_raised_by", a.keyword, raised_by(a.error, disc.trainer))
            observe.merge("keyword_error", a.keyword, first_line(a.error))
        if a.stage is not None and a.error is not None:
            observe.fail(a.stage, a.error, disc.trainer)
        if a.built and not a.landed:
            observe.fail("construct", AssertionError(f"built with {a.keyword}= but the tokenizer is not the trainer's "
                                                     "processing class"))
    observe.set("construct_seconds", {a.keyword: round(a.seconds, 2) for a in attempts})
    if not any(a.built and a.landed for a in attempts):
        worst = next((a for a in attempts if a.state == "untested" and a.error), attempts[0])
        if worst.error is not None:
            observe.fail("construct", worst.error, disc.trainer)
        pytest.fail(f"no keyword built a {spec.trainer_class} holding the tokenizer: "
                    + "; ".join(f"{a.keyword}=: {first_line(a.error) if a.error else a.state}" for a in attempts))


@pytest.mark.stage("construct")
def test_deprecation_emitter(disc: Any, construction: Any, spec: TrainerSpec, tokenizer: Any, train_dataset: Any,
                             tmp_path: Any, observe: Any) -> None:
    """For a deprecated keyword: which function emitted the warning (TRL's trainer, or transformers' Trainer)."""
    deprecated = [a for a in construction.attempts.values() if a.state == "deprecated"]
    for a in deprecated:
        who = runs.emitter_of(a.keyword, lambda kw=a.keyword: runs.build(spec, disc, kw, tokenizer, train_dataset,
                                                                          tmp_path))
        if who is None:  # a logger deprecation names its function on the record
            who = next((e for _c, m, e in a.caught.items if e and runs.deprecates(a.keyword, m)), None)
        observe.probe(f"deprecated_by.{a.keyword}", who)
        warning = a.deprecation()
        assert warning, f"{a.keyword}= was measured deprecated but no deprecation warning was kept"
        observe.merge("keyword_warning", a.keyword, warning.splitlines()[0][:500])


@pytest.mark.stage("import")
def test_platform(observe: Any) -> None:
    """The platform facts that select code paths in the stack: the device, and whether triton and
    bitsandbytes import (TRL imports its fused kernels only where triton does). `kto-compat platform`
    measures a failing cell again with such a fact changed, to see whether the failure moves."""
    import importlib

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    observe.probe("platform.device", device)
    for name in ("triton", "bitsandbytes"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure to import is "not importable", the fact measured
            state = "not importable"
        else:
            state = "importable"
        observe.probe(f"platform.{name}", state)
    assert device == "cpu" or torch.version.cuda, "torch reports a CUDA device but is not a CUDA build"


@pytest.mark.stage("train")
def test_training(disc: Any, construction: Any, spec: TrainerSpec, observe: Any) -> None:
    """At least three BF16 optimizer steps with a reference model give finite losses."""
    if construction.trained_with is None:
        pytest.skip("no trainer was built (recorded by test_keyword_probe)")
    if construction.caught is not None:
        for category, message, emitter in construction.caught.items:
            observe.warn("train", category, message, emitter)
    if construction.error is not None:
        observe.fail("train", construction.error, disc.trainer)
        raise construction.error
    observe.set("training", construction.training)
    from compat.contract import training_problem  # the verdict's own rule, not a copy

    problem = training_problem(construction.training)
    if problem:
        observe.fail("train", AssertionError(problem))
        pytest.fail(problem)

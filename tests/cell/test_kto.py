"""In-cell KTO measurements: where KTO imports from, which tokenizer keyword
the trainer takes, and whether BF16 KTO steps run with finite losses.

Runs inside one TRL/transformers pair. Every answer is measured on the
installed packages - no version checks - and recorded through ``observe``;
a test fails only when the pair cannot do the thing at all.
"""

from __future__ import annotations

import logging
import math
import re
import resource
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from compat.kto_import import KTOImport, discover_kto_once
from compat.peak import Peak, rss_available, rss_bytes
from compat.tiny import kto_config, kto_config_values
from conftest import raised_by  # the same module instance pytest loaded

KEYWORDS: tuple[str, ...] = ("processing_class", "tokenizer")
MAX_STEPS = 3
BATCH = 4  # KTO's KL term pairs each completion with another prompt's: needs > 1.
ROWS = 8


# --------------------------------------------------------------------------- import


@pytest.fixture(scope="session")
def kto_found() -> KTOImport:
    """Discovery ran at session start (conftest); this is its cached result."""
    return discover_kto_once()


@pytest.fixture(scope="session")
def kto(kto_found: KTOImport, observe: Any) -> KTOImport:
    """The KTO classes, or a skip: later stages mean nothing without an import."""
    if not kto_found.ok:
        for kw in KEYWORDS:
            observe.merge("keyword", kw, "untested")
        pytest.skip("KTO did not import (recorded by test_import)")
    return kto_found


def test_import(kto_found: KTOImport, observe: Any) -> None:
    """KTOTrainer imports from some location; prefer the real class over a forwarding shim."""
    for path, category, message in kto_found.warnings:
        observe.warn("import", category, f"[{path}] {message}")
    observe.set("import_locations", {p: "shim" if p in kto_found.shims else "real" for p in kto_found.found})
    if not kto_found.ok:
        assert kto_found.error is not None
        observe.fail("import", kto_found.error)
        pytest.fail(f"KTO import failed: {type(kto_found.error).__name__}: {kto_found.error}")
    observe.set("import_path", kto_found.path)


# --------------------------------------------------------------------------- building blocks


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from compat.tiny import make_tokenizer

    return make_tokenizer()


@pytest.fixture(scope="session")
def train_dataset() -> Any:
    """Plain-text rows: every TRL release takes them; conversational rows are the formatter's job."""
    from datasets import Dataset

    from compat.tiny import kto_rows

    return Dataset.from_list(kto_rows(ROWS))


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def config_values(output_dir: Path) -> dict[str, Any]:
    """What the cell wants from KTOConfig; fields a release lacks are dropped later."""
    return kto_config_values(str(output_dir), cpu=not on_cuda(), batch=BATCH, steps=MAX_STEPS, learning_rate=1e-3,
                             max_length=64, max_prompt_length=32, max_completion_length=32)


def make_config(config_cls: type, output_dir: Path, **overrides: Any) -> Any:
    return kto_config(config_cls, {**config_values(output_dir), **overrides})


# --------------------------------------------------------------------------- capturing


@dataclass
class Caught:
    """Warnings and warning-level log records seen while something ran."""

    items: list[tuple[str, str]] = field(default_factory=list)  # (category, message)


class _ListHandler(logging.Handler):
    def __init__(self, sink: Caught) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.items.append((f"log.{record.levelname}", record.getMessage()))


@contextmanager
def capture() -> Iterator[Caught]:
    """Both channels: libraries deprecate through ``warnings`` and through their loggers."""
    caught = Caught()
    handler = _ListHandler(caught)
    loggers = [logging.getLogger(name) for name in ("transformers", "trl", "accelerate", "datasets")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield caught
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        caught.items[:0] = [(w.category.__name__, str(w.message)) for w in seen]


def deprecates(keyword: str, message: str) -> bool:
    """Does ``message`` say the *argument* ``keyword`` is deprecated?

    Not merely mention it: "Trainer.tokenizer is now deprecated" is about an
    attribute and is logged whenever TRL reads it, whatever keyword was passed.
    """
    pattern = (
        rf"(?<![\w.])[`'\"]?{keyword}[`'\"]?\s+(?:argument\s+|parameter\s+|keyword\s+)?"
        rf"(?:is|has been|was)\s+(?:now\s+)?deprecated"
    )
    return re.search(pattern, message, flags=re.IGNORECASE) is not None


# --------------------------------------------------------------------------- keyword probe

_FORMAT_FRAMES = re.compile(r"tokeni[sz]|chat_template|prepare_dataset|process_tokens|_format|\bmap\b")


def failed_while_formatting(exc: BaseException) -> bool:
    """True when the traceback passes through dataset mapping / tokenising code."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__", "")
        if module.startswith("datasets.") or _FORMAT_FRAMES.search(frame.f_code.co_name):
            return True
        tb = tb.tb_next
    return False


def refuses_keyword(exc: BaseException, keyword: str) -> bool:
    """Is ``exc`` a refusal of the tokenizer keyword rather than some other failure?

    Python's "unexpected keyword argument" naming either tokenizer keyword
    counts: TRL may accept ``tokenizer=``, rename it and have transformers'
    Trainer refuse ``processing_class``. So does an error that says the probed
    keyword itself is deprecated (transformers' deprecate_kwarg can raise).
    """
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if isinstance(exc, TypeError) and match and match.group(1) in KEYWORDS:
        return True
    return deprecates(keyword, str(exc))


@dataclass
class Probe:
    """One construction attempt with one keyword.

    The trainer itself is not kept: building the next TrainingArguments resets
    accelerate's global state under an already-built trainer, so training
    builds its own trainer right before it trains.
    """

    keyword: str
    state: str  # accepted | deprecated | rejected | untested
    built: bool = False
    error: BaseException | None = None
    stage: str | None = None  # construct | format, for failures not about the keyword
    caught: Caught = field(default_factory=Caught)
    seconds: float = 0.0


def build_trainer(
    kto: KTOImport, keyword: str, tok: Any, dataset: Any, output_dir: Path, **config: Any
) -> Any:
    """KTOTrainer with a fresh seeded policy and an identical reference, all by keyword."""
    from compat.tiny import make_model

    assert kto.trainer is not None and kto.config is not None
    return kto.trainer(
        model=make_model(seed=0, tokenizer=tok),
        ref_model=make_model(seed=0, tokenizer=tok),
        args=make_config(kto.config, output_dir, **config),
        train_dataset=dataset,
        **{keyword: tok},
    )


def probe(kto: KTOImport, keyword: str, tok: Any, dataset: Any, output_dir: Path) -> Probe:
    start = time.perf_counter()
    error: BaseException | None = None
    with capture() as caught:
        try:
            build_trainer(kto, keyword, tok, dataset, output_dir)
        except Exception as exc:  # the failure is the measurement
            error = exc
    seconds = time.perf_counter() - start
    if error is None:
        state = "deprecated" if deprecation_of(keyword, caught) else "accepted"
        return Probe(keyword, state, built=True, caught=caught, seconds=seconds)
    if refuses_keyword(error, keyword):
        return Probe(keyword, "rejected", error=error, caught=caught, seconds=seconds)
    stage = "format" if failed_while_formatting(error) else "construct"
    return Probe(keyword, "untested", error=error, stage=stage, caught=caught, seconds=seconds)


def deprecation_of(keyword: str, caught: Caught) -> str | None:
    """The first captured warning saying ``keyword`` is deprecated, if any."""
    return next((f"{c}: {m}" for c, m in caught.items if deprecates(keyword, m)), None)


@pytest.fixture(scope="session")
def probes(
    kto: KTOImport, tokenizer: Any, train_dataset: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Probe]:
    """Build one trainer per keyword, once per session; training reads the verdicts."""
    return {kw: probe(kto, kw, tokenizer, train_dataset, tmp_path_factory.mktemp(kw)) for kw in KEYWORDS}


def record_probe(observe: Any, result: Probe, within: type) -> None:
    observe.merge("keyword", result.keyword, result.state)
    for category, message in result.caught.items:
        observe.warn("construct", category, f"[{result.keyword}=] {message}")
    deprecation = deprecation_of(result.keyword, result.caught)
    if result.state == "deprecated" and deprecation:
        observe.merge("keyword_warning", result.keyword, deprecation.splitlines()[0][:500])
    if result.error is not None:
        observe.merge("keyword_raised_by", result.keyword, raised_by(result.error, within))
        first = str(result.error).strip().splitlines()
        observe.merge("keyword_error", result.keyword, f"{type(result.error).__name__}: {first[0] if first else ''}")
    if result.stage is not None and result.error is not None:
        observe.fail(result.stage, result.error, within)


def most_relevant_failure(results: list[Probe]) -> Probe:
    """A failure unrelated to the keyword says more than a keyword refusal."""
    return next((r for r in results if r.state == "untested"), results[0])


def test_keyword_probe(kto: KTOImport, probes: dict[str, Probe], observe: Any) -> None:
    """Which of processing_class= / tokenizer= builds a KTOTrainer on this pair, and who refuses."""
    assert kto.trainer is not None
    results = list(probes.values())
    for result in results:
        record_probe(observe, result, kto.trainer)
    observe.set("construct_seconds", {r.keyword: round(r.seconds, 2) for r in results})
    if not any(r.built for r in results):
        worst = most_relevant_failure(results)
        assert worst.error is not None
        observe.fail("construct", worst.error, kto.trainer)
        pytest.fail(f"no keyword built a KTOTrainer: {type(worst.error).__name__}: {worst.error}")


# --------------------------------------------------------------------------- format mode

MARKER = "<|im_start|>"  # ChatML turn start in compat.tiny's template: present only if templated
# Roomy limits: the byte-level tokenizer spends one id per byte, and a truncated
# prompt would read as "content lost" when the trainer did template it.
ROOMY = {"max_length": 256, "max_prompt_length": 128, "max_completion_length": 128}


def prompt_ids_column(columns: list[str]) -> str | None:
    """The tokenized-prompt column, whatever this TRL calls it (prompt_input_ids, prompt_ids)."""
    return next((c for c in columns if re.fullmatch(r"prompt_(?:input_)?ids", c)), None)


def templating_evidence(trainer: Any, tok: Any, content: str) -> tuple[str, str]:
    """(format_mode, why) from the trainer's own tokenized dataset.

    The decoded prompt ids must hold both the template's turn marker and the
    prompt's text: markers without text (lost content) or text without markers
    (``str(list)`` tokenized, or no templating) both mean the trainer does not
    do the templating, so scripts must hand it pre-rendered text.
    """
    dataset = trainer.train_dataset
    column = prompt_ids_column(list(dataset.column_names))
    if column is None:
        return "text", f"no tokenized prompt column among {dataset.column_names}"
    decoded = tok.decode([i for i in dataset[0][column] if i >= 0], skip_special_tokens=False)
    if MARKER in decoded and content in decoded:
        return "conversational", f"{column} decodes to {decoded[:120]!r}"
    return "text", f"{column} lacks {'the template markers' if MARKER not in decoded else 'the prompt text'}: {decoded[:120]!r}"


def test_format_mode(
    kto: KTOImport, probes: dict[str, Probe], tokenizer: Any, tmp_path: Path, observe: Any
) -> None:
    """Does this pair's KTOTrainer template conversational rows itself? Measured, not looked up.

    ``conversational``: message-list rows may be given as they are;
    ``text``: the trainer needs rows rendered to text beforehand (it raised,
    or its tokenized prompt lacks the template or the text). The adapter's
    ``format_dataset`` reads this fact.
    """
    from datasets import Dataset

    from compat.tiny import kto_rows

    keyword = pick_keyword(probes)
    if keyword is None:
        pytest.skip("no trainer was built (recorded by test_keyword_probe)")
    rows = kto_rows(ROWS, conversational=True)
    content = rows[0]["prompt"][0]["content"]
    with capture():  # construction chatter is recorded by the keyword probe
        try:
            trainer = build_trainer(kto, keyword, tokenizer, Dataset.from_list(rows), tmp_path, **ROOMY)
        except Exception as exc:  # refusing message lists is the measurement
            first = str(exc).strip().splitlines()
            mode, why = "text", f"construction raised {type(exc).__name__}: {first[0][:200] if first else ''}"
        else:
            mode, why = templating_evidence(trainer, tokenizer, content)
    observe.set("format_mode", mode)
    observe.set("format_mode_evidence", why)
    assert mode in ("conversational", "text")


# --------------------------------------------------------------------------- training


class PeakRSS:
    """Peak resident memory above the starting RSS while training runs (CPU runs);
    where /proc is missing, the ru_maxrss increase is the fallback."""

    def __init__(self) -> None:
        self._maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._peak = Peak(rss_bytes) if rss_available() else None
        self.method = ("cpu: peak RSS above pre-training RSS, /proc/self/statm sampled every 2 ms" if self._peak
                       else "cpu: ru_maxrss increase during training (0 if below an earlier peak)")

    def __enter__(self) -> PeakRSS:
        if self._peak:
            self._peak.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._peak:
            self._peak.__exit__(*exc)

    @property
    def bytes(self) -> int:
        if self._peak:
            return self._peak.delta
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._maxrss0


@contextmanager
def watch_compute_dtype(model: Any, seen: list[tuple[str, bool]]) -> Iterator[None]:
    """Record each Linear's output dtype and the autocast state on training forwards.

    That is what "BF16" has to mean: matmuls producing bfloat16, whether by
    autocast (CPU/CUDA mixed precision) or by weights cast to bf16. Every
    Linear is watched, not just lm_head: newer TRL computes log-probs from
    ``lm_head.weight`` directly (a fused head), so lm_head's forward never runs.
    """
    import torch

    device = "cuda" if on_cuda() else "cpu"

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        if torch.is_grad_enabled() and isinstance(output, torch.Tensor):  # the trained pass only
            seen.append((str(output.dtype).removeprefix("torch."), torch.is_autocast_enabled(device)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def pick_keyword(probes: dict[str, Probe]) -> str | None:
    """Train with the keyword that worked cleanly; a deprecated one if that is all there is."""
    for state in ("accepted", "deprecated"):
        for result in probes.values():
            if result.state == state and result.built:
                return result.keyword
    return None


def train(trainer: Any) -> dict[str, Any]:
    """Run the steps; return what the contract's ``training`` entry holds."""
    import torch

    cuda = on_cuda()
    seen: list[tuple[str, bool]] = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    memory = PeakRSS()
    start = time.perf_counter()
    with memory, watch_compute_dtype(trainer.model, seen):
        trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    dtypes = sorted({d for d, _ in seen})
    return {
        "device": "cuda" if cuda else "cpu",
        "dtype": dtypes[0] if len(dtypes) == 1 else ",".join(dtypes) or "unobserved",
        "autocast": any(a for _, a in seen),
        "steps": int(trainer.state.global_step),
        "losses": losses,
        "seconds": round(seconds, 3),
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated() if cuda else memory.bytes),
        "memory_method": "cuda: torch.cuda.max_memory_allocated" if cuda else memory.method,
    }


def test_training(
    kto: KTOImport,
    probes: dict[str, Probe],
    tokenizer: Any,
    train_dataset: Any,
    tmp_path: Path,
    observe: Any,
) -> None:
    """At least three BF16 KTO optimizer steps with a reference model give finite losses."""
    keyword = pick_keyword(probes)
    if keyword is None:
        pytest.skip("no trainer was built (recorded by test_keyword_probe)")
    try:
        trainer = build_trainer(kto, keyword, tokenizer, train_dataset, tmp_path)
    except Exception as exc:  # it built moments ago in the probe; record, don't guess
        observe.fail("construct", exc, kto.trainer)
        raise
    with capture() as caught:
        try:
            result = train(trainer)
        except Exception as exc:
            observe.fail("train", exc, kto.trainer)
            raise
    for category, message in caught.items:
        observe.warn("train", category, message)
    result["keyword"] = keyword
    observe.set("training", result)
    problem = training_problem(result)
    if problem:
        observe.fail("train", AssertionError(problem))
        pytest.fail(problem)


def training_problem(result: dict[str, Any]) -> str | None:
    """Why a finished run does not count as BF16 KTO training, if it does not."""
    losses = result["losses"]
    if result["steps"] < MAX_STEPS or len(losses) < MAX_STEPS:
        return f"expected {MAX_STEPS} logged steps, got steps={result['steps']} losses={losses}"
    if not all(math.isfinite(x) for x in losses):
        return f"non-finite KTO loss: {losses}"
    if result["dtype"] != "bfloat16":
        return f"training forward ran in {result['dtype']}, not bfloat16"
    return None


# --------------------------------------------------------------------------- the tiny stand-ins


def test_tiny_model_and_tokenizer_are_offline_and_deterministic(tokenizer: Any) -> None:
    """Cells compare pairs, so the stand-ins must not vary: same seed, same weights; text round-trips."""
    import torch

    from compat.tiny import make_model

    text = "<|im_start|>user\nhéllo ✓<|im_end|>\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    a, b, c = (make_model(seed=s, tokenizer=tokenizer) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))
    assert a.config.vocab_size == len(tokenizer)

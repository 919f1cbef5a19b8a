"""The measuring algorithm the cell suite shares across trainers: build a trainer
with one tokenizer keyword, tell a refusal from other failures, train a few
BF16 steps and say what ran.

Cell code: imported by tests/cell/<trainer>/ inside a pair's environment; a
trainer is described by its spec (compat/trainers), never by version checks.
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

from compat.cell.discover import Discovery
from compat.cell.peak import Peak, rss_available, rss_bytes
from compat.cell.tiny import config_values, make_config, make_model
from compat.cell.trace import raised_by
from compat.contract import KEYWORDS
from compat.trainers import TrainerSpec

__all__ = ["Attempt", "Caught", "attempt", "build", "capture", "on_cuda", "train"]

STEPS = 3


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def config(spec: TrainerSpec, disc: Discovery, output_dir: Path, **overrides: Any) -> Any:
    """The spec's tiny-run config on this machine (CUDA when present, else CPU autocast)."""
    assert disc.config is not None
    values = config_values(str(output_dir), cpu=not on_cuda(), batch=spec.batch, steps=STEPS, learning_rate=1e-3,
                           **spec.recipe)
    return make_config(disc.config, {**values, **overrides}, spec.config_aliases)


def build(spec: TrainerSpec, disc: Discovery, keyword: str, tok: Any, dataset: Any, output_dir: Path,
          **overrides: Any) -> Any:
    """The trainer with a fresh seeded policy (and, where the spec names them, identical further
    models such as a reference), every argument by keyword."""
    assert disc.trainer is not None and disc.config is not None
    return disc.trainer(
        model=make_model(seed=0, tokenizer=tok),
        **{name: make_model(seed=0, tokenizer=tok) for name in spec.models},
        args=config(spec, disc, output_dir, **overrides),
        train_dataset=dataset,
        **{keyword: tok},
    )


# --------------------------------------------------------------------------- capturing


@dataclass
class Caught:
    """Warnings and warning-level log records seen while something ran: (category, message, emitter)."""

    items: list[tuple[str, str, str | None]] = field(default_factory=list)


class _ListHandler(logging.Handler):
    def __init__(self, sink: Caught) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.items.append((f"log.{record.levelname}", record.getMessage(), f"{record.name}.{record.funcName}"))


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
        caught.items[:0] = [(w.category.__name__, str(w.message), None) for w in seen]


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


_FORMAT_FRAMES = re.compile(r"tokeni[sz]|chat_template|prepare_dataset|process_tokens|_format|\bmap\b")


def failed_while_formatting(exc: BaseException) -> bool:
    """True when the traceback passes through dataset mapping / tokenising code."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__", "").startswith("datasets.") or _FORMAT_FRAMES.search(frame.f_code.co_name):
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


# --------------------------------------------------------------------------- one construction


def landed(trainer: Any, tok: Any) -> bool:
    """Did the tokenizer handed in become the trainer's processing class (``tokenizer`` on older Trainers)?"""
    for name in ("processing_class", "tokenizer"):
        held = vars(trainer).get(name)
        if held is not None:
            return held is tok
    return False


@dataclass
class Attempt:
    """One construction with one keyword, and what it says about that keyword."""

    keyword: str
    state: str  # accepted | deprecated | rejected | untested
    trainer: Any = None  # dropped once used, to free the models; `built` remembers
    built: bool = False
    error: BaseException | None = None
    stage: str | None = None  # construct | format, for failures not about the keyword
    caught: Caught = field(default_factory=Caught)
    landed: bool = False
    seconds: float = 0.0

    def deprecation(self) -> str | None:
        """The first captured warning saying this keyword is deprecated, if any."""
        return next((f"{c}: {m}" for c, m, _ in self.caught.items if deprecates(self.keyword, m)), None)


def attempt(spec: TrainerSpec, disc: Discovery, keyword: str, tok: Any, dataset: Any, output_dir: Path) -> Attempt:
    start = time.perf_counter()
    error: BaseException | None = None
    trainer = None
    with capture() as caught:
        try:
            trainer = build(spec, disc, keyword, tok, dataset, output_dir)
        except Exception as exc:  # the failure is the measurement
            error = exc
    seconds = time.perf_counter() - start
    if trainer is not None:
        result = Attempt(keyword, "accepted", trainer, built=True, caught=caught, landed=landed(trainer, tok),
                         seconds=seconds)
        result.state = "deprecated" if result.deprecation() else "accepted"
        return result
    assert error is not None
    if refuses_keyword(error, keyword):
        return Attempt(keyword, "rejected", error=error, caught=caught, seconds=seconds)
    stage = "format" if failed_while_formatting(error) else "construct"
    return Attempt(keyword, "untested", error=error, stage=stage, caught=caught, seconds=seconds)


def emitter_of(keyword: str, run: Any) -> str | None:
    """Which function emitted ``keyword``'s deprecation warning: ``run()`` again with that
    warning turned into an error, read off the traceback (a decorator's wrapper names the
    function it wraps). None if the deprecation came through a logger or did not recur."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=rf"(?is).*[`'\"]?{keyword}[`'\"]?\s.*deprecated")
        try:
            run()
        except (DeprecationWarning, FutureWarning, UserWarning) as exc:
            tb, frame = exc.__traceback__, None
            while tb is not None:
                frame, tb = tb.tb_frame, tb.tb_next
            wrapped = frame.f_locals.get("func") if frame is not None else None
            if callable(wrapped) and hasattr(wrapped, "__qualname__"):
                return f"{wrapped.__module__}.{wrapped.__qualname__}"
            return raised_by(exc)
        except Exception:  # noqa: BLE001 - any other failure: the emitter stays unknown
            return None
    return None


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


def train(trainer: Any) -> dict[str, Any]:
    """Run the steps; return what the contract's ``training`` entry holds."""
    import torch

    cuda = on_cuda()
    seen: list[tuple[str, bool]] = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    memory = PeakRSS()
    weights = sorted({str(p.dtype).removeprefix("torch.") for p in trainer.model.parameters()})
    start = time.perf_counter()
    with memory, watch_compute_dtype(trainer.model, seen):
        trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    dtypes = sorted({d for d, _ in seen})
    return {
        "device": "cuda" if cuda else "cpu",
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "dtype": dtypes[0] if len(dtypes) == 1 else ",".join(dtypes) or "unobserved",
        "autocast": any(a for _, a in seen),
        "weights": ",".join(weights),
        "steps": int(trainer.state.global_step),
        "losses": [x if math.isfinite(x) else str(x) for x in losses],
        "seconds": round(seconds, 3),
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated() if cuda else memory.bytes),
        "memory_method": "cuda: torch.cuda.max_memory_allocated" if cuda else memory.method,
    }

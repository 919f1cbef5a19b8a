"""The cell suite's plugin: streams what the tests observe, one JSON line per record.

This runs inside a cell environment holding one TRL/transformers pair. Tests
record measurements through the ``observe`` fixture; each record is appended
to ``$COMPAT_CELL_RESULT`` and flushed at once (as pytest-reportlog does), so
a crash keeps everything measured before it. compat.contract.wire documents the
records and folds them back, for the host and for the suite itself. Keeping measurements apart from
pass/fail lets a test *measure* that a keyword is rejected without that
being a test failure; every real test failure is streamed too, with the
stage it belongs to, and the host's verdict counts it.

The host runs ``pytest tests/cell/<trainer>``; ``$COMPAT_TRAINER`` names the
spec (compat/trainers) the shared fixtures serve.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

# The host puts the checkout on PYTHONPATH; make `import compat` work from a bare pytest run too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Cells run offline: anything that tries the hub fails loudly instead of downloading.
# Set before any test module imports huggingface_hub, which reads these at import.
os.environ.update({
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
    "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false",
})

from compat import probes  # noqa: E402  (after the environment is set)
from compat.cell.trace import describe  # noqa: E402
from compat.contract import DEFAULT_TRAINER, fold_observations  # noqa: E402
from compat.trainers import TrainerSpec, get  # noqa: E402

DISTS = ("trl", "transformers", "torch", "accelerate", "datasets", "tokenizers", "pyarrow", "numpy", "peft", "jinja2",
         "tyro", "rich")


class Observations:
    """The cell's observation record: tests write measurements, later tests may read them back.

    Every record is streamed as it is made; reading back folds the records with the contract's own
    fold_observations, so the suite and the host can never read one record two ways."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - open for the session
        self._lines: list[str] = []
        self._failed: set[str] = set()
        self._warned: set[str] = set()

    def _emit(self, record: dict[str, Any], measured: bool = True) -> None:
        line = json.dumps(record, sort_keys=True, default=str)
        if measured:  # pytest's own outcomes are streamed for the host, not read back by tests
            self._lines.append(line)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    def probe(self, key: str, value: Any) -> None:
        """A registry probe; a value the registry does not allow is a bug in this suite."""
        if not probes.by_key(key).allows(value):
            raise ValueError(f"probe {key!r}: value {value!r} is not allowed by compat/probes.py")
        self._emit({"probe": key, "value": value})

    def set(self, key: str, value: Any) -> None:
        self._emit({"set": key, "value": value})

    def merge(self, key: str, sub: str, value: Any) -> None:
        self._emit({"merge": key, "sub": sub, "value": value})

    def warn(self, stage: str, category: str, message: str, emitter: str | None = None) -> None:
        entry = {"stage": stage, "category": category, "message": message.splitlines()[0][:500] if message else "",
                 "emitter": emitter}
        seen = json.dumps(entry, sort_keys=True)
        if seen not in self._warned:
            self._warned.add(seen)
            self._emit({"warning": entry})

    def fail(self, stage: str, exc: BaseException, within: type | None = None, **extra: Any) -> None:
        """Record the first failure of a stage with where it was raised."""
        if stage not in self._failed:
            self._failed.add(stage)
            self._emit({"failure": stage, **describe(exc, within), **extra})

    def get(self, key: str, default: Any = None) -> Any:
        """One recorded value, folded afresh from the records (readers get their own copy)."""
        return self.snapshot().get(key, default)

    def snapshot(self) -> dict[str, Any]:
        return fold_observations(self._lines)

    def raw(self, record: dict[str, Any]) -> None:
        self._emit(record, measured=False)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CellPlugin:
    """Hooks that stream test outcomes and the environment, then end the process fast."""

    def __init__(self, observations: Observations) -> None:
        self.obs = observations
        self.stages: dict[str, str] = {}
        self.exitstatus = 0

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        env = {"python": sys.version.split()[0]}
        for dist in DISTS:
            with contextlib.suppress(metadata.PackageNotFoundError):  # a distribution this pair does without
                env[dist] = metadata.version(dist)
        self.obs.set("environment", env)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Modules that read earlier measurements (``USES_CELL_MEASUREMENTS``) run last; each
        test's stage (``STAGE`` of its module, or a ``stage`` marker) goes with its failures."""
        items.sort(key=lambda item: bool(getattr(getattr(item, "module", None), "USES_CELL_MEASUREMENTS", False)))
        for item in items:
            marker = item.get_closest_marker("stage")
            self.stages[item.nodeid] = marker.args[0] if marker else getattr(getattr(item, "module", None), "STAGE", "train")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.outcome == "passed":
            return
        outcome = report.outcome
        if outcome == "failed" and report.when != "call":
            outcome = "error"
        message = ""
        if outcome in ("failed", "error"):
            crash = getattr(report.longrepr, "reprcrash", None)
            message = (crash.message if crash else str(report.longrepr)).strip().splitlines()[0][:500] if report.longrepr else ""
        self.obs.raw({"test": report.nodeid, "outcome": outcome, "stage": self.stages.get(report.nodeid), "message": message})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.exitstatus = int(exitstatus)
        self.obs.raw({"exit": self.exitstatus})

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Everything is recorded and reported: skip interpreter teardown (torch's takes about a second)."""
        self.obs.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exitstatus)


_OBSERVATIONS = Observations(os.environ.get("COMPAT_CELL_RESULT"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stage(name): the pipeline stage a failure of this test is charged to")
    if os.environ.get("COMPAT_CELL_RESULT"):
        config.pluginmanager.register(CellPlugin(_OBSERVATIONS), "compat-cell")


@pytest.fixture(scope="session")
def observe() -> Observations:
    return _OBSERVATIONS


@pytest.fixture(scope="session")
def spec() -> TrainerSpec:
    return get(os.environ.get("COMPAT_TRAINER", DEFAULT_TRAINER))


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from compat.cell.tiny import make_tokenizer

    return make_tokenizer()


# --------------------------------------------------------------------------- the trainer under test


def pytest_sessionstart(session: pytest.Session) -> None:
    """Import the trainer before any test module can: import warnings show only once, so
    discovery (which records them) must be first. It never raises; test_import records it."""
    from compat.cell.discover import discover_once

    chosen = get(os.environ.get("COMPAT_TRAINER", DEFAULT_TRAINER))
    # The collector stays off while the stack imports: that allocates about a million objects that live
    # to the end, and Python's default thresholds rescan them again and again (about a tenth of a warm
    # cell). Then what the imports built is frozen, so later collections skip it (accelerate runs a full
    # one in every train()), and the first generation is collected less often.
    gc.disable()
    try:
        discover_once(chosen.candidates, (chosen.config_class, chosen.trainer_class))
    finally:
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        gc.enable()


@pytest.fixture(scope="session")
def discovery(spec: TrainerSpec) -> Any:
    from compat.cell.discover import discover_once

    return discover_once(spec.candidates, (spec.config_class, spec.trainer_class))


@pytest.fixture(scope="session")
def disc(discovery: Any, spec: TrainerSpec) -> Any:
    """The trainer's classes, or a skip: later stages mean nothing without an import."""
    if not discovery.ok:
        pytest.skip(f"{spec.trainer_class} did not import (recorded by test_import)")
    return discovery


@pytest.fixture(scope="session")
def train_dataset(spec: TrainerSpec) -> Any:
    """Plain-text rows: every TRL release takes them; conversational rows are the formatter's job."""
    from datasets import Dataset

    return Dataset.from_list(spec.rows(8, False))


@dataclass
class Construction:
    """Each keyword tried once; the first that builds cleanly trains at once (a later
    TrainingArguments resets accelerate's state under a built trainer)."""

    attempts: dict[str, Any]
    training: dict[str, Any] | None = None
    trained_with: str | None = None
    error: BaseException | None = None  # training's failure
    caught: Any = None


@pytest.fixture(scope="session")
def construction(disc: Any, spec: TrainerSpec, tokenizer: Any, train_dataset: Any,
                 tmp_path_factory: pytest.TempPathFactory) -> Construction:
    from compat.cell import runs

    out = Construction({})
    order = list(spec.keywords)
    for keyword in order:
        result = runs.attempt(spec, disc, keyword, tokenizer, train_dataset, tmp_path_factory.mktemp(keyword))
        out.attempts[keyword] = result
        if result.state == "accepted" and result.landed and out.trained_with is None:
            _train(out, result)
    if out.trained_with is None:  # only a deprecated keyword built: train with it, rebuilt last
        fallback = next((a for a in out.attempts.values() if a.state == "deprecated" and a.landed), None)
        if fallback is not None:
            again = runs.attempt(spec, disc, fallback.keyword, tokenizer, train_dataset, tmp_path_factory.mktemp("train"))
            if again.built:
                _train(out, again)
    for result in out.attempts.values():
        result.trainer = None  # free the models
    return out


def _train(out: Construction, result: Any) -> None:
    from compat.cell import runs

    out.trained_with = result.keyword
    with runs.capture() as caught:
        try:
            out.training = {**runs.train(result.trainer), "keyword": result.keyword}
        except Exception as exc:  # recorded by test_training
            out.error = exc
    out.caught = caught

"""The verdict: which status a cell's observations earn, and the typed cell built from them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from packaging.version import Version

from compat import probes
from compat.contract.model import (
    BUILT,
    DEFAULT_TRAINER,
    FIELDS,
    KEYWORDS,
    MIN_STEPS,
    PIPELINE,
    CellResult,
    Failure,
    Stage,
    Status,
    Tests,
)


def training_problem(training: Mapping[str, Any] | None) -> str | None:
    """Why a training record does not count as BF16 KTO training, if it does not."""
    if not training:
        return "no training record"
    losses = list(training.get("losses") or [])
    steps = int(training.get("steps") or 0)
    if steps < MIN_STEPS or len(losses) < MIN_STEPS:
        return f"expected at least {MIN_STEPS} optimizer steps with logged losses, got steps={steps}, {len(losses)} losses"
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in losses):
        return f"non-finite loss: {losses}"
    if training.get("dtype") != "bfloat16":
        return f"training forward ran in {training.get('dtype')}, not bfloat16"
    return None


def _stage_of(name: str | None, default: Stage) -> Stage:
    try:
        return Stage(name) if name else default
    except ValueError:
        return default


def verdict(obs: Mapping[str, Any], adapter_required: bool = True) -> tuple[Status, Failure | None]:
    """The status a cell earned: ``compatible`` only when every check passed.

    The checks: KTO imported; a keyword built the trainer and the tokenizer
    landed in its processing_class; at least three BF16 optimizer steps with
    finite losses; the adapter run passed (where the trainer has one); and no
    test of the cell suite failed. The first failing check, in pipeline order,
    is the stage the cell is charged to.
    """
    recorded = obs.get("failures", {})
    problems: dict[Stage, tuple[str, str | None]] = {}
    for stage, f in recorded.items():
        problems.setdefault(_stage_of(stage, Stage.CONSTRUCT), (f.get("message", ""), f.get("raised_by")))
    probes_seen = obs.get("probes", {})
    if not probes_seen.get("import_path"):
        problems.setdefault(Stage.IMPORT, ("the trainer class did not import (no import location found)", None))
    built = [kw for kw in KEYWORDS if probes_seen.get(f"keyword.{kw}") in BUILT]
    if not built:
        problems.setdefault(Stage.CONSTRUCT, ("no tokenizer keyword built the trainer", None))
    trained = training_problem(obs.get("training"))
    if trained:
        problems.setdefault(Stage.TRAIN, (trained, None))
    if adapter_required and obs.get("adapter") != "pass":
        detail = "; ".join(f"{k}: {v}" for k, v in sorted((obs.get("adapter_detail") or {}).items()))
        problems.setdefault(Stage.ADAPTER, (f"adapter check {obs.get('adapter') or 'did not run'}"
                                            + (f": {detail}" if detail else ""), None))
    for test in (obs.get("tests") or {}).get("failed", ()):
        stage = _stage_of(test.get("stage"), Stage.TRAIN)
        problems.setdefault(stage, (f"cell test {test['id']} {test.get('outcome', 'failed')}: {test['message']}", None))
    if not problems:
        return Status.COMPATIBLE, None
    stage = min(problems, key=lambda s: PIPELINE.index(s) if s in PIPELINE else len(PIPELINE))
    message, raised_by = problems[stage]
    drift = recorded.get(str(stage), {}).get("drift")
    return Status.INCOMPATIBLE, Failure.from_dict({"stage": stage, "message": message, "raised_by": raised_by,
                                                   "drift": drift})


def result_from_observations(trl: Version, transformers: Version, resolution: str, obs: Mapping[str, Any], *,
                             trainer: str = DEFAULT_TRAINER, adapter_required: bool = True, **identity: Any) -> CellResult:
    """A cell's result from what its suite observed: the registry says where each probe goes."""
    status, failure = verdict(obs, adapter_required)
    values: dict[str, Any] = {"keyword": dict.fromkeys(KEYWORDS, "untested"), "probes": {}}
    for probe in probes.for_trainer(trainer):
        value = obs.get("probes", {}).get(probe.key)
        head, _, rest = probe.key.partition(".")
        if head not in FIELDS or head == "probes":
            if value is not None:
                values["probes"][probe.key] = value
        elif rest:
            values.setdefault(head, {})[rest] = value
        else:
            values[head] = value
    values["keyword"] = {k: v or "untested" for k, v in values["keyword"].items()}
    tests = obs.get("tests")
    return CellResult(
        trl=trl, transformers=transformers, resolution=resolution, status=status, trainer=trainer, failure=failure,
        environment=dict(obs.get("environment", {})),
        keyword_raised_by=dict(obs.get("keyword_raised_by", {})),
        formatter={k: dict(v) for k, v in (obs.get("formatter") or {}).items()},
        training=obs.get("training"),
        adapter=obs.get("adapter"),
        adapter_outcome=obs.get("adapter_outcome"),
        adapter_detail=dict(obs.get("adapter_detail") or {}),
        tests=Tests.from_dict({**tests, "failed": [{k: f[k] for k in ("id", "message", "outcome") if k in f}
                                                   for f in tests.get("failed", ())]}) if tests else None,
        warnings=tuple(obs.get("warnings", ())),
        **values, **identity,
    )



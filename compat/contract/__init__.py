"""The result contract, shared by host and cell code (with the probe registry it reads).

One module per job: ``model`` (types and errors), ``wire`` (how a cell's observations stream
and fold), ``verdict`` (which status they earn), ``facts`` (what a cell says for findings.json).
Reading and writing documents is the host's (compat.harness.documents). The names below are
the public surface; import them from here.
"""

from compat.contract.facts import FINDINGS_SCHEMA_VERSION, facts, point_findings
from compat.contract.model import (
    AXES,
    BUILT,
    DEFAULT_TRAINER,
    FIELDS,
    KEYWORDS,
    MIN_STEPS,
    PIPELINE,
    CellResult,
    CompatError,
    ContractError,
    Drift,
    DriftKind,
    Failure,
    KeywordState,
    Resolution,
    Stage,
    Status,
    TestFailure,
    Tests,
    cell_id,
    parse_version,
    plain,
)
from compat.contract.verdict import result_from_observations, training_problem, verdict
from compat.contract.wire import fold_observations

__all__ = [
    "AXES", "BUILT", "DEFAULT_TRAINER", "FIELDS", "FINDINGS_SCHEMA_VERSION", "KEYWORDS", "MIN_STEPS", "PIPELINE", "CellResult",
    "CompatError", "ContractError", "Drift", "DriftKind", "Failure", "KeywordState", "Resolution", "Stage", "Status",
    "TestFailure", "Tests", "cell_id", "facts", "fold_observations", "parse_version", "plain", "point_findings",
    "result_from_observations", "training_problem", "verdict",
]

"""The adapter, checked inside the cell against what this cell measured.

``compat/examples/kto_script.py`` is a legacy-style KTO script (old config
field names, ``tokenizer=``) that goes through the adapter for everything
version-sensitive. On a pair this cell found compatible it must train twice:
through the ``compat.adapter`` package (whatever ``compat/findings.json``
says, introspection where it says nothing) and through a single-file export
whose findings were built from *this cell's own* measurements - the path users
of ``export-adapter`` take. On a pair this cell found broken, the export must
refuse up front with ``BrokenPairError`` naming the pair and the stage.

Recorded as ``adapter``: ``pass`` / ``refused`` when the adapter did its job,
``fail`` otherwise, with ``adapter_detail`` saying which path broke and how.
The API tests below pin the adapter's promises (warnings, keywords, invalid
rows) on the installed classes, with measured and with introspected findings.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import warnings
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import compat
from compat.examples.kto_script import DATA, load_adapter, main
from compat.harness.export import render
from compat.harness.findings import build
from compat.harness.results import KEYWORDS, CellResult, verdict

# conftest runs this module after the measuring ones: it reads their observations.
USES_CELL_MEASUREMENTS = True
# Introspection on purpose in half the API tests: its "unmeasured" notice is expected there.
pytestmark = pytest.mark.filterwarnings("ignore:.*outside the measured ranges:UserWarning")

MIN_STEPS = 3


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def cell_result(obs: dict[str, Any]) -> CellResult | None:
    """This pair's result as the host would build it from the observations so far.

    None when the measuring tests did not run (a ``-k`` selection, or this
    file alone): a verdict from half the measurements would be a guess.
    """
    failures = obs.get("failures", {})
    if not obs.get("import_path") and "import" not in failures:
        return None
    if obs.get("import_path") and "training" not in obs and not {"construct", "format", "train"} & set(failures):
        return None
    status, failure = verdict(obs)
    return CellResult(
        trl=metadata.version("trl"),
        transformers=metadata.version("transformers"),
        resolution="latest",
        status=status,
        failure=failure,
        keyword={k: obs.get("keyword", {}).get(k, "untested") for k in KEYWORDS},
        import_path=obs.get("import_path"),
        format_mode=obs.get("format_mode"),
    )


@pytest.fixture(scope="module")
def this_cell(observe: Any) -> CellResult:
    result = cell_result(observe.snapshot())
    if result is None:
        pytest.skip("needs test_kto.py's measurements in the same session")
    return result


def export_adapter(findings: dict[str, Any], directory: Path) -> ModuleType:
    """``export-adapter``'s output for ``findings``, imported from its file as users would."""
    path = directory / "kto_compat.py"
    path.write_text(render(Path(compat.__file__).parent, findings))
    return load_adapter(str(path))


def finite_run(losses: list[float]) -> bool:
    return len(losses) >= MIN_STEPS and all(math.isfinite(x) for x in losses)


# --------------------------------------------------------------------------- the script, end to end


def test_script_trains_through_adapter(this_cell: CellResult, tmp_path: Path, observe: Any) -> None:
    """One unchanged legacy script trains on this pair through the package and through the export."""
    if this_cell.failed:
        pytest.skip("pair measured broken: test_broken_pair_is_refused checks the refusal")
    losses: dict[str, list[float]] = {}
    modes: dict[str, str] = {}  # the row format each adapter chose ("text" when unmeasured)
    problems: dict[str, str] = {}
    # Sequential, each run with its own models, config and trainer: a second
    # TrainingArguments resets accelerate's state under a live trainer.
    for name in ("package", "exported"):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                if name == "package":
                    adapter = importlib.import_module("compat.adapter")
                else:
                    adapter = export_adapter(build([this_cell]), tmp_path)
                losses[name] = main(adapter, tmp_path / name)
                modes[name] = adapter.lookup("format_mode") or "text"
            except Exception as exc:  # the failure is the finding
                problems[name] = first_line(exc)
                continue
        if not finite_run(losses[name]):
            problems[name] = f"expected {MIN_STEPS} finite losses, got {losses[name]}"
        unmeasured = [str(w.message) for w in seen if w.category.__name__ == "UnmeasuredPairWarning"]
        if name == "exported" and unmeasured:
            problems[name] = f"measured findings were embedded but the adapter introspected: {unmeasured[0]}"
    observe.set("adapter_losses", losses)
    observe.set("adapter_format_mode", modes)
    for name, problem in problems.items():
        observe.merge("adapter_detail", name, problem)
    observe.set("adapter", "fail" if problems else "pass")
    assert not problems, problems


def test_broken_pair_is_refused(this_cell: CellResult, tmp_path: Path, observe: Any) -> None:
    """Measured broken: every entry point raises BrokenPairError before touching its arguments."""
    if not this_cell.failed:
        pytest.skip("pair measured compatible: test_script_trains_through_adapter runs the script")
    assert this_cell.failure is not None
    findings = build([this_cell])
    if this_cell.failure.drift:
        check_drift_refusal(findings, tmp_path, observe)
        return
    assert findings["facts"]["broken"], "a failed cell must yield a broken rule"
    problems: list[str] = []
    try:
        adapter = export_adapter(findings, tmp_path)
    except Exception as exc:
        adapter, problems = None, [f"export failed: {first_line(exc)}"]
    if adapter is not None:
        sentinel = object()  # never usable: reaching it would mean work began
        calls = {
            "load_kto": lambda: adapter.load_kto(),
            "make_kto_config": lambda: adapter.make_kto_config(output_dir=str(tmp_path)),
            "make_kto_trainer": lambda: adapter.make_kto_trainer(
                model=sentinel, ref_model=sentinel, args=sentinel, train_dataset=sentinel, tokenizer=sentinel
            ),
            "format_dataset": lambda: adapter.format_dataset([sentinel], sentinel),
        }
        for name, call in calls.items():
            try:
                call()
            except adapter.BrokenPairError as exc:
                problems += refusal_problems(name, str(exc), this_cell, bool(findings["working"]))
            except Exception as exc:
                problems.append(f"{name} raised {first_line(exc)} instead of BrokenPairError")
            else:
                problems.append(f"{name} did not refuse the broken pair")
    if problems:
        observe.merge("adapter_detail", "exported", problems[0])
    # The contract's adapter field is pass|fail: refusing a broken pair with advice is the adapter working.
    observe.set("adapter", "fail" if problems else "pass")
    observe.set("adapter_outcome", "refused")
    assert not problems, problems


def check_drift_refusal(findings: dict[str, Any], tmp_path: Path, observe: Any) -> None:
    """Drift is never "broken" (a user without the drift must not be refused), but where
    KTO fails to import, the adapter explains the drift instead of a bare traceback."""
    assert findings["facts"]["drift"] and not findings["facts"]["broken"]
    adapter = export_adapter(findings, tmp_path)
    with pytest.raises(adapter.BrokenPairError, match="dependency drift"):
        adapter.load_kto()
    observe.set("adapter", "pass")
    observe.set("adapter_outcome", "refused")


def refusal_problems(name: str, message: str, cell: CellResult, have_working: bool) -> list[str]:
    """What a refusal message lacks: the pair, the failing stage, and advice only when there is some."""
    assert cell.failure is not None
    wanted = [f"trl {cell.trl}", f"transformers {cell.transformers}", f"'{cell.failure.stage}'"]
    problems = [f"{name}: refusal does not mention {w!r}: {message[:200]!r}" for w in wanted if w not in message]
    if ("pip install" in message) != have_working:
        problems.append(f"{name}: 'pip install' advice {'missing' if have_working else 'without any working pair'}")
    return problems


# --------------------------------------------------------------------------- the API, piece by piece


@pytest.fixture(params=["measured", "introspected"])
def api(request: pytest.FixtureRequest, this_cell: CellResult, tmp_path: Path) -> ModuleType:
    """A fresh exported adapter (its warn-once memory empty) with this cell's findings or with none."""
    if this_cell.import_path is None:
        pytest.skip("KTO does not import on this pair")
    if request.param == "measured":
        if this_cell.failed:
            pytest.skip("measured findings refuse this pair (test_broken_pair_is_refused)")
        findings = build([this_cell])
    else:
        findings = {"facts": {}, "working": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_adapter(findings, tmp_path)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from compat.tiny import make_tokenizer

    return make_tokenizer()


# Values for the fields a rename test may set: the same meaning under either name.
_RENAME_VALUES: dict[str, Any] = {
    "eval_strategy": "no", "evaluation_strategy": "no",
    "use_cpu": True, "no_cuda": True,
    "max_length": 77, "max_seq_length": 77,
}


def test_config_warns_once_per_changed_field(api: ModuleType, tmp_path: Path) -> None:
    """Renamed and dropped fields each warn once, naming the field; renamed values arrive."""
    config_cls, _ = api.load_kto()
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    renames = {
        absent: present
        for group in api.SYNONYMS
        for present in group if present in fields
        for absent in group if absent not in fields and absent in _RENAME_VALUES
    }
    bogus = ("kto_compat_no_such_field", "kto_compat_nor_this_one")  # two: "once per field", not once in all
    kwargs = {"output_dir": str(tmp_path), **dict.fromkeys(bogus, 1), **{a: _RENAME_VALUES[a] for a in renames}}

    def adapter_messages(**kw: Any) -> tuple[Any, list[str]]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            config = api.make_kto_config(**kw)
        return config, [str(w.message) for w in seen if issubclass(w.category, api.AdapterWarning)]

    config, first = adapter_messages(**kwargs)
    for field in bogus:
        dropped = [m for m in first if repr(field) in m]
        assert len(dropped) == 1 and "dropped" in dropped[0], (field, first)
    for absent, present in renames.items():
        named = [m for m in first if repr(absent) in m and repr(present) in m]
        assert len(named) == 1, (absent, first)
        assert getattr(config, present) == _RENAME_VALUES[absent]
    _, again = adapter_messages(**kwargs)
    assert not [m for m in again if any(repr(f) in m for f in (*bogus, *renames))], again


class _Recorded(Exception):
    """Raised by the recording trainer once it has seen its arguments."""


def test_trainer_gets_every_argument_by_keyword(
    api: ModuleType, this_cell: CellResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All arguments go by keyword, the tokenizer under a keyword this cell saw build a trainer."""
    config_cls, trainer_cls = api.load_kto()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class Recording(trainer_cls):  # type: ignore[misc, valid-type]
        """The real trainer class with a forwarding __init__ that stops once it has the arguments."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append((args, kwargs))
            raise _Recorded

    monkeypatch.setattr(api, "load_kto", lambda: (config_cls, Recording))
    given = {name: object() for name in ("model", "ref_model", "args", "train_dataset", "eval_dataset", "callbacks")}
    tok = object()
    for style in KEYWORDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(_Recorded):
                api.make_kto_trainer(**given, **{style: tok})
        args, kwargs = calls[-1]
        assert args == (), f"positional arguments passed: {args!r}"
        used = [kw for kw in KEYWORDS if kw in kwargs]
        assert len(used) == 1 and kwargs[used[0]] is tok, kwargs
        assert {k: v for k, v in kwargs.items() if k not in KEYWORDS} == given
        built_with = {k for k, v in this_cell.keyword.items() if v in ("accepted", "deprecated")}
        assert used[0] in built_with, f"adapter chose {used[0]}=, the cell built only with {sorted(built_with)}"
    with pytest.raises(TypeError, match="twice"):
        api.make_kto_trainer(**given, tokenizer=tok, processing_class=tok)


def test_format_dataset_drops_or_names_invalid_rows(api: ModuleType, tokenizer: Any) -> None:
    """on_invalid="drop" keeps the valid rows and counts the rest; "raise" names the first bad row."""
    import json

    from datasets import Dataset

    valid = json.loads(DATA.read_text())[:4]
    no_reply = {"prompt": valid[0]["prompt"], "completion": [{"role": "user", "content": "no reply"}], "label": True}
    empty = {"prompt": valid[1]["prompt"], "completion": [], "label": False}
    rows = valid[:2] + [no_reply] + valid[2:] + [empty]  # invalid at 2 and 5
    dataset = Dataset.from_list(rows)

    with pytest.warns(api.AdapterWarning, match=r"dropped 2 invalid row\(s\) of 6"):
        out = api.format_dataset(dataset, tokenizer, on_invalid="drop")
    assert isinstance(out, Dataset) and len(out) == len(valid)
    for row, kept in zip(valid, out.to_list()):
        assert row["prompt"][-1]["content"] in json.dumps(kept["prompt"], ensure_ascii=False)
        assert row["completion"][0]["content"] in json.dumps(kept["completion"], ensure_ascii=False)
        assert kept["label"] is row["label"]
    with pytest.raises(ValueError, match=r"\brow 2\b"):
        api.format_dataset(dataset, tokenizer, on_invalid="raise")

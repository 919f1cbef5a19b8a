"""The adapter, checked inside the cell against what this cell measured.

The contract's ``adapter`` field is measured here, on this pair's real
KTOTrainer, through the single-file export holding *this cell's own*
findings (the path users of ``export-adapter`` take):

- compatible pair: ``compat/cell/examples/kto_script.py`` (the template users
  copy: old config field names, ``tokenizer=``, ``import kto_compat``) formats
  every conversational boundary case with the adapter, which must refuse
  exactly the invalid ones up front (ValueError naming the row) and hand every
  other row to KTOTrainer, which then builds and trains 3 BF16 steps over
  batches covering all of them;
- broken pair: every entry point refuses with ``BrokenPairError`` naming the
  pair and the stage, before touching its arguments.

Recorded as ``adapter`` (pass/fail), ``adapter_outcome`` (trained/refused) and
``adapter_detail`` (what it did, or what broke). The API tests below pin the
adapter's promises (strict config, keywords, invalid rows, introspection) on
the installed classes, with measured and with no findings.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import sys
import warnings
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.version import Version

import compat
from compat.cell.cases import CASES
from compat.cell.examples.kto_script import EXAMPLE_ROWS
from compat.cell.export import render
from compat.cell.trace import first_line
from compat.contract import KEYWORDS, CellResult, point_findings, result_from_observations

# conftest runs this module after the measuring ones: it reads their observations.
USES_CELL_MEASUREMENTS = True
STAGE = "adapter"
# Introspection on purpose in half the API tests: its "unmeasured" notice is expected there.
pytestmark = pytest.mark.filterwarnings("ignore:.*outside the measured ranges:UserWarning")

BATCH, STEPS = 8, 3


@pytest.fixture(scope="module")
def this_cell(observe: Any) -> CellResult:
    """This pair's result as the host will build it, from the observations so far (the
    adapter check itself excluded): the findings the export embeds come from it."""
    obs = observe.snapshot()
    if not obs["probes"].get("import_path") and "import" not in obs["failures"]:
        pytest.skip("needs test_kto.py's measurements in the same session")
    return result_from_observations(Version(metadata.version("trl")), Version(metadata.version("transformers")),
                                    "latest", obs, adapter_required=False)


def export_adapter(findings: dict[str, Any], directory: Path) -> ModuleType:
    """``export-adapter``'s output for ``findings``, imported from its file (a fresh module each time:
    its warn-once memory starts empty). Registered in sys.modules first: its dataclasses look their
    module up there while being created."""
    path = directory / "kto_compat.py"
    path.write_text(render(Path(compat.__file__).parent, findings), encoding="utf-8")
    name = f"kto_compat_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def script_on(directory: Path) -> ModuleType:
    """The example script importing ``kto_compat`` from ``directory``, as a user's copy beside the export would."""
    for name in ("kto_compat", "compat.cell.examples.kto_script"):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module("compat.cell.examples.kto_script")
    finally:
        sys.path.remove(str(directory))


def boundary_rows() -> tuple[list[dict[str, Any]], int]:
    """Every conversational boundary case's row, and how many of them are invalid. String-only
    rows are left out: a dataset holds one column type, and the keyword probe trains on those."""
    cases = [c for c in CASES if not isinstance(c.row.get("prompt"), str)]
    return [dict(c.row) for c in cases], sum(c.invalid for c in cases)


# --------------------------------------------------------------------------- the script, end to end


def test_script_trains_every_boundary_row(this_cell: CellResult, tmp_path: Path, observe: Any) -> None:
    """Through the export with this cell's findings: invalid rows refused up front, every other row trains."""
    if this_cell.failed:
        pytest.skip("pair measured broken: test_broken_pair_is_refused checks the refusal")
    rows, invalid = boundary_rows()
    kept = len(rows) - invalid
    assert kept <= BATCH * STEPS, "raise BATCH: some boundary rows would never reach a training step"
    problems: list[str] = []
    losses: list[float] = []
    adapter = None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            export_adapter(point_findings(this_cell), tmp_path)
            script = script_on(tmp_path)
            adapter = script.kto_compat
            assert Path(adapter.__file__).parent == tmp_path, "the script did not pick up the exported adapter"
            from compat.cell.tiny import make_model, make_tokenizer

            tok = make_tokenizer()
            trainer = script.train(make_model(seed=0, tokenizer=tok), make_model(seed=0, tokenizer=tok), tok, rows,
                                   tmp_path / "run", batch_size=BATCH, steps=STEPS, on_invalid="drop")
            losses = script.losses(trainer)
        except Exception as exc:  # the failure is the finding
            problems.append(f"{'export' if adapter is None else 'the trainer'} failed: {first_line(exc)}")
    if adapter is not None and not problems:
        dropped = getattr(adapter.format_dataset, "last_dropped", None)
        if dropped != invalid:
            problems.append(f"the adapter refused {dropped} rows, the boundary set has {invalid} invalid ones")
        if len(losses) < STEPS or not all(math.isfinite(x) for x in losses):
            problems.append(f"expected {STEPS} finite losses, got {losses}")
        unmeasured = [str(w.message) for w in seen if w.category.__name__ == "UnmeasuredPairWarning"]
        if unmeasured:
            problems.append(f"measured findings were embedded but the adapter introspected: {unmeasured[0]}")
    observe.set("adapter_losses", losses)
    if problems:
        observe.merge("adapter_detail", "fail", "; ".join(problems))
    else:
        observe.merge("adapter_detail", "trained", f"{kept} boundary rows formatted ({this_cell.format_mode or 'text'} "
                      f"rows) and trained {STEPS} BF16 steps of {BATCH}; {invalid} invalid rows refused up front")
    observe.set("adapter", "fail" if problems else "pass")
    observe.set("adapter_outcome", None if problems else "trained")
    assert not problems, problems


def test_broken_pair_is_refused(this_cell: CellResult, tmp_path: Path, observe: Any) -> None:
    """Measured broken: every entry point raises BrokenPairError before touching its arguments."""
    if not this_cell.failed:
        pytest.skip("pair measured compatible: test_script_trains_every_boundary_row runs the script")
    assert this_cell.failure is not None
    findings = point_findings(this_cell)
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
    observe.merge("adapter_detail", "fail" if problems else "refused",
                  problems[0] if problems else f"every entry point raises BrokenPairError naming the "
                  f"'{this_cell.failure.stage}' failure, before any work")
    # The contract's adapter field is pass|fail: refusing a broken pair with advice is the adapter working.
    observe.set("adapter", "fail" if problems else "pass")
    observe.set("adapter_outcome", None if problems else "refused")
    assert not problems, problems


def check_drift_refusal(findings: dict[str, Any], tmp_path: Path, observe: Any) -> None:
    """Drift is never "broken" (a user without the drift must not be refused), but where KTO
    fails to import, the adapter explains the drift - naming the package - instead of a bare traceback."""
    drift = findings["facts"]["drift"][0]["value"]
    assert not findings["facts"].get("broken")
    adapter = export_adapter(findings, tmp_path)
    with pytest.raises(adapter.BrokenPairError, match="dependency drift") as raised:
        adapter.load_kto()
    if drift.get("package"):
        assert drift["package"] in str(raised.value)
    observe.merge("adapter_detail", "refused", "load_kto raises BrokenPairError explaining the dependency drift: "
                  + str(drift.get("cause")))
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
        findings = point_findings(this_cell)
    else:
        findings = {"schema_version": 2, "facts": {}, "working": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_adapter(findings, tmp_path)


# Values for fields a rename test may set: the same meaning under either name.
_RENAME_VALUES: dict[str, Any] = {"eval_strategy": "no", "evaluation_strategy": "no", "use_cpu": True, "no_cuda": True}


def _adapter_messages(api: ModuleType, **kw: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        config = api.make_kto_config(**kw)
    return config, [str(w.message) for w in seen if issubclass(w.category, api.AdapterWarning)]


def test_config_is_strict_and_translates_renames_once(api: ModuleType, tmp_path: Path) -> None:
    """A misspelled field raises TypeError naming it, as KTOConfig does; a field this TRL renamed
    or removed is translated or dropped with one warning each; the value arrives under the new name."""
    config_cls, _ = api.load_kto()
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    with pytest.raises(TypeError, match="learning_rat"):
        api.make_kto_config(output_dir=str(tmp_path), learning_rat=5e-7)
    renames = {old: new for new, old in api.CONFIG_RENAMES if new in fields and old not in fields and old in _RENAME_VALUES}
    removed = [n for n in ("max_prompt_length", "max_completion_length") if n not in fields]
    kwargs = {"output_dir": str(tmp_path), "use_cpu": True, **{a: _RENAME_VALUES[a] for a in renames},
              **dict.fromkeys(removed, 16)}
    kwargs = {k: v for k, v in kwargs.items() if k in fields or k in renames or k in removed}
    config, first = _adapter_messages(api, **kwargs)
    for old, new in renames.items():
        named = [m for m in first if repr(old) in m and repr(new) in m]
        assert len(named) == 1, (old, first)
        assert getattr(config, new) == _RENAME_VALUES[old]
    for name in removed:
        assert len([m for m in first if repr(name) in m and "dropped" in m]) == 1, (name, first)
    _, again = _adapter_messages(api, **kwargs)
    assert not again, again


def test_config_with_the_defaults_builds_here(api: ModuleType, tmp_path: Path) -> None:
    """Only output_dir, as a script starting from TRL's defaults writes it: the config builds on this
    machine. (Newer TRL defaults bf16 to None and turns it on in __post_init__, which TrainingArguments
    refuses without a bf16 GPU unless told to use the CPU: the adapter has to see that coming.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = api.make_kto_config(output_dir=str(tmp_path))
    assert config.output_dir == str(tmp_path)


def test_config_happy_path_is_silent(api: ModuleType, tmp_path: Path) -> None:
    """Current field names on this pair: no warning at all (use_cpu given, so no CPU notice either)."""
    config_cls, _ = api.load_kto()
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    flag = "use_cpu" if "use_cpu" in fields else "no_cuda"
    _, messages = _adapter_messages(api, output_dir=str(tmp_path), learning_rate=5e-7, bf16=True, **{flag: True})
    assert messages == []


class _Recorded(Exception):
    """Raised by the recording trainer once it has seen its arguments."""


def test_trainer_gets_every_argument_by_keyword(
    api: ModuleType, this_cell: CellResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All arguments go by keyword, the tokenizer under a keyword this cell saw build a trainer."""
    config_cls, trainer_cls = api.load_kto()
    built_with = {k for k, v in this_cell.keyword.items() if v in ("accepted", "deprecated")}
    if not built_with:
        pytest.skip("no keyword built a trainer on this pair (test_introspection_agrees_with_the_probe covers it)")
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class Recording(trainer_cls):  # type: ignore[misc, valid-type]
        """The real trainer class with a forwarding __init__ that stops once it has the arguments."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append((args, kwargs))
            raise _Recorded

    # Recording's (*args, **kwargs) __init__ is a forwarder: introspection reads the real chain past it.
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
        assert used[0] in built_with, f"adapter chose {used[0]}=, the cell built only with {sorted(built_with)}"
    with pytest.raises(TypeError, match="twice"):
        api.make_kto_trainer(**given, tokenizer=tok, processing_class=tok)


def test_introspection_agrees_with_the_probe(disc: Any, this_cell: CellResult, tmp_path: Path) -> None:
    """Outside the measured ranges the adapter reads the constructor chain: it must pick a keyword
    this cell saw build the trainer, or raise BrokenPairError naming the refusing classes when none did."""
    adapter = export_adapter({"schema_version": 2, "facts": {}, "working": []}, tmp_path)
    built_with = {k for k, v in this_cell.keyword.items() if v in ("accepted", "deprecated")}
    rejected = {k for k, v in this_cell.keyword.items() if v == "rejected"}
    if built_with:
        assert adapter.introspect_keyword(disc.trainer) in built_with
    elif rejected == set(KEYWORDS):
        with pytest.raises(adapter.BrokenPairError, match="no tokenizer keyword can build") as raised:
            adapter.introspect_keyword(disc.trainer)
        assert str(raised.value).count("does not take") == 2
    else:
        pytest.skip("construction failed for a reason other than the keyword: nothing to compare")


def test_format_dataset_drops_or_names_invalid_rows(api: ModuleType, tokenizer: Any) -> None:
    """on_invalid="drop" keeps the valid rows and counts the rest; "raise" names the first bad row."""
    import json

    from datasets import Dataset

    valid = json.loads(EXAMPLE_ROWS.read_text(encoding="utf-8"))[:4]
    no_reply = {"prompt": valid[0]["prompt"], "completion": [{"role": "user", "content": "no reply"}], "label": True}
    empty = {"prompt": valid[1]["prompt"], "completion": [], "label": False}
    rows = valid[:2] + [no_reply] + valid[2:] + [empty]  # invalid at 2 and 5
    dataset = Dataset.from_list(rows)

    with pytest.warns(api.AdapterWarning, match=r"dropped 2 invalid row\(s\) of 6"):
        out = api.format_dataset(dataset, tokenizer, on_invalid="drop")
    assert isinstance(out, Dataset) and len(out) == len(valid)
    for row, kept in zip(valid, out.to_list(), strict=True):
        assert row["prompt"][-1]["content"] in json.dumps(kept["prompt"], ensure_ascii=False)
        assert row["completion"][0]["content"] in json.dumps(kept["completion"], ensure_ascii=False)
        assert kept["label"] is row["label"]
    with pytest.raises(ValueError, match=r"\brow 2\b"):
        api.format_dataset(dataset, tokenizer, on_invalid="raise")


def test_package_adapter_imports(this_cell: CellResult) -> None:
    """The installed package's adapter (with the committed findings) imports on this pair."""
    module = importlib.import_module("compat.cell.adapter")
    assert callable(module.make_kto_trainer)

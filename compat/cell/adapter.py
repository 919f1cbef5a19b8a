"""One KTO training script for every TRL x transformers pair.

Training scripts call ``load_kto``, ``make_kto_config``, ``make_kto_trainer``
and ``format_dataset`` (or the drop-in ``KTOConfig`` / ``KTOTrainer``, which
take TRL's own keyword names) instead of writing version checks. Every
decision comes from ``findings.json``, which ``kto-compat findings`` generates
from measured cells; this file holds no version boundary of its own.

- On a pair a cell measured, the answer is that cell's.
- On a pair inside a measured range but not itself measured, the answer is
  inferred: it warns once, naming the measured pairs it comes from.
- Outside every range it introspects the installed classes (the whole
  constructor chain, transformers' ``Trainer`` included) and warns once; where
  no tokenizer keyword can work it raises ``BrokenPairError``.
- On a pair measured broken it refuses up front, naming the failure and the
  nearest working pairs.

Cell code: imports and works on every pair. ``kto-compat export-adapter``
inlines this module and the cell modules it imports into one file with the
findings embedded, for repositories that do not install kto-compat.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from compat.cell.config_names import (  # export: inline
    CONFIG_REMOVABLE,
    CONFIG_RENAMES,
)
from compat.cell.discover import KTO_CANDIDATES, discover_once, root_cause  # export: inline
from compat.cell.formatting import format_rows  # export: inline
from compat.cell.validate import SchemaError, validate  # export: inline

__all__ = [
    "AdapterWarning", "BrokenPairError", "FindingsError", "InferredPairWarning", "KTOConfig", "KTOTrainer",
    "MissingPackageError",
    "UnmeasuredPairWarning", "format_dataset", "installed_pair", "load_kto", "lookup", "make_kto_config",
    "make_kto_trainer",
]

# Embedded (already validated) by export-adapter; the package reads findings.json beside compat/.
FINDINGS: dict[str, Any] | None = None

KEYWORDS = ("processing_class", "tokenizer")
class AdapterWarning(UserWarning):
    """The adapter changed or dropped something the script asked for."""


class UnmeasuredPairWarning(UserWarning):
    """The installed pair is outside every measured range; decisions come from introspection."""


class InferredPairWarning(UserWarning):
    """The installed pair lies inside a measured range but was not itself measured."""


class BrokenPairError(RuntimeError):
    """The installed pair cannot train KTO (measured, or no tokenizer keyword can work); raised before heavy work."""


class FindingsError(ValueError):
    """findings.json is not what kto-compat generates (the message names the problem)."""


class MissingPackageError(ImportError):
    """trl or transformers is not installed in this Python, or this trl has no KTO trainer."""


_warned: set[str] = set()


def _warn_once(key: str, message: str, category: type[Warning] = AdapterWarning) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, category, stacklevel=3)


def installed_pair() -> tuple[str, str]:
    versions = []
    for name in ("trl", "transformers"):
        try:
            versions.append(metadata.version(name))
        except metadata.PackageNotFoundError:
            raise MissingPackageError(f"{name} is not installed in this Python: install it beside kto-compat's "
                                      f"adapter (pip install {name})", name=name) from None
    return versions[0], versions[1]


def where_raised(exc: BaseException) -> str:
    """'module.function' of the innermost frame that raised ``exc`` (the code that really failed)."""
    tb = exc.__traceback__
    if tb is None:
        return "unknown"
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"


def real_error(exc: BaseException) -> str:
    """The error that started ``exc``'s chain and where it was raised, in one line."""
    cause = root_cause(exc)
    first = (str(cause).splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first} (raised in {where_raised(cause)})"


@functools.cache
def findings() -> dict[str, Any]:
    if FINDINGS is not None:
        return FINDINGS
    base = Path(__file__).resolve().parents[1]
    path = base / "findings.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"facts": {}, "working": []}
    except (OSError, ValueError) as exc:
        raise FindingsError(f"{path}: cannot read findings: {exc}") from None
    try:
        validate(data, json.loads((base / "schema" / "findings.schema.json").read_text(encoding="utf-8")), str(path))
    except SchemaError as exc:
        raise FindingsError(str(exc)) from None
    return data


def _contains(spec: str, version: str) -> bool:
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _rule(fact: str, pair: tuple[str, str]) -> dict[str, Any] | None:
    trl, tf = pair
    for rule in findings().get("facts", {}).get(fact, []):
        if _contains(rule["trl"], trl) and _contains(rule["transformers"], tf):
            return rule
    return None


def _measured(rule: dict[str, Any], pair: tuple[str, str]) -> bool:
    """Was this very pair measured? Rules from older findings without the list count as measured."""
    points = rule.get("measured")
    if points is None:
        return True
    return any(Version(a) == Version(pair[0]) and Version(b) == Version(pair[1]) for a, b in points)


def lookup(fact: str, pair: tuple[str, str] | None = None, warn: bool = False) -> Any | None:
    """The value of ``fact`` for ``pair`` (default: installed), or None outside every rule.

    Inside a rule but not itself measured, the value is an inference; with
    ``warn`` that is said once, naming the measured pairs it rests on.
    """
    pair = pair or installed_pair()
    rule = _rule(fact, pair)
    if rule is None:
        return None
    if warn and not _measured(rule, pair):
        basis = "; ".join(f"trl {a} + transformers {b}" for a, b in closest(pair, rule.get("measured") or []))
        # Once per pair, not per fact: one script asks several facts of the same inference.
        _warn_once(f"inferred:{pair}", f"trl {pair[0]} + transformers {pair[1]} was not measured by kto-compat; "
                   f"its {fact} ({rule['value']!r}) and the adapter's other answers for it are inferred from "
                   f"the nearest measured pairs: {basis}", InferredPairWarning)
    return rule["value"]


def _distance(pair: tuple[str, str], point: list[str] | tuple[str, str]) -> tuple[int, float]:
    """Same TRL first, then same transformers, then the fewest minors apart."""
    trl, tf, a, b = Version(pair[0]), Version(pair[1]), Version(point[0]), Version(point[1])
    tier = 0 if a == trl else 1 if b == tf else 2
    return tier, abs(_ordinal(a) - _ordinal(trl)) + abs(_ordinal(b) - _ordinal(tf))


def closest(pair: tuple[str, str], points: list[list[str]], limit: int = 4) -> list[tuple[str, str]]:
    """The measured points nearest to ``pair``."""
    ranked = sorted(points, key=lambda p: (*_distance(pair, p), p))
    return [(p[0], p[1]) for p in ranked[:limit]]


def nearest_working(pair: tuple[str, str], limit: int = 3) -> list[tuple[str, str]]:
    """Measured-compatible pairs closest to ``pair``: same TRL first, then same transformers."""
    return closest(pair, findings().get("working", []), limit)


def _ordinal(v: Version) -> float:
    major, minor, micro = (list(v.release) + [0, 0, 0])[:3]
    return major * 1000 + minor + micro / 1000


def _nearest_lines(pair: tuple[str, str]) -> list[str]:
    near = nearest_working(pair)
    if not near:
        return []
    return ["Nearest measured working pairs: " + "; ".join(f"trl {a} + transformers {b}" for a, b in near),
            f"To move to the nearest one: {install_line(near[0])}"]


def install_line(pair: Sequence[str]) -> str:
    """The command that reproduces a measured cell's environment, as findings.json gives it (``install``,
    keyed ``trl==A,transformers==B``); a bare pin of the pair where the findings have none."""
    lines = findings().get("install") or {}
    return str(lines.get(f"trl=={pair[0]},transformers=={pair[1]}")
               or f"pip install 'trl=={pair[0]}' 'transformers=={pair[1]}'")


def advice(pair: tuple[str, str], broken: dict[str, Any], basis: list[list[str]] | None = None) -> str:
    """Why the pair is refused: measured on this very pair, or (``basis``) inferred from measured pairs."""
    name = f"trl {pair[0]} + transformers {pair[1]}"
    if basis is None:
        head = f"{name} was measured broken by kto-compat: it fails at the '{broken.get('stage')}' stage with: "
    else:
        around = "; ".join(f"trl {a} + transformers {b}" for a, b in closest(pair, basis))
        head = (f"{name} was not measured, but lies inside a range kto-compat measured broken ({around}): "
                f"those fail at the '{broken.get('stage')}' stage with: ")
    refused = broken.get("refused") or {}
    why = ("; no tokenizer keyword builds the trainer: " + "; ".join(f"{kw}= refused by {by}" for kw, by in refused.items())
           if len(refused) > 1 else f" (raised by {broken['raised_by']})" if broken.get("raised_by") else "")
    return "\n".join([head + str(broken.get("message")) + why, *_nearest_lines(pair)])


def check_pair(pair: tuple[str, str] | None = None) -> None:
    """Refuse a pair measured broken (or inside a range measured broken) before anything heavy is imported or built."""
    pair = pair or installed_pair()
    rule = _rule("broken", pair)
    if rule:
        basis = None if _measured(rule, pair) else list(rule.get("measured") or [])
        raise BrokenPairError(advice(pair, rule["value"], basis))


def _unmeasured(what: str) -> None:
    trl, tf = installed_pair()
    _warn_once(f"unmeasured:{what}", f"trl {trl} + transformers {tf} is outside the measured ranges; "
               f"{what} is decided by introspecting the installed classes", UnmeasuredPairWarning)


@functools.cache
def load_kto() -> tuple[type, type]:
    """``(KTOConfig, KTOTrainer)`` from the location measured to work without avoidable warnings."""
    check_pair()
    try:
        return _import_kto()
    except MissingPackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised unless the findings explain it
        drift = lookup("drift")
        if drift:
            raise BrokenPairError(drift_advice(installed_pair(), drift, exc)) from exc
        raise


def drift_advice(pair: tuple[str, str], drift: dict[str, Any], exc: BaseException) -> str:
    """The error that really happened here first, then what was measured about this pair's drift."""
    cause = drift.get("cause") or f"with today's dependencies it fails with '{drift.get('message')}'"
    lines = [f"trl {pair[0]} + transformers {pair[1]} fails at import here: {real_error(exc)}.",
             f"kto-compat measured dependency drift for this pair, not a fault of the pair: {cause}."]
    package = drift.get("package")
    if package and package not in f"{real_error(exc)} {where_raised(root_cause(exc))}":
        lines.append(f"The error above does not name {package}: this environment may fail for another reason; "
                     "`kto-compat check --run` measures it here.")
    remedy = drift.get("remedy")
    if remedy:
        lines.append(f"Measured to work: {remedy}.")
    lines += _nearest_lines(pair)
    return "\n".join(lines)


def _import_kto() -> tuple[type, type]:
    path = lookup("import_path", warn=True)
    if path:
        if path not in KTO_CANDIDATES:  # findings name a module; import only places we know how to probe
            raise FindingsError(f"findings name import_path {path!r}, not one of {', '.join(KTO_CANDIDATES)}")
        module = importlib.import_module(path)
        try:
            return module.KTOConfig, module.KTOTrainer
        except AttributeError:
            raise MissingPackageError(f"{path} has no KTOConfig/KTOTrainer in trl {installed_pair()[0]}, where "
                                      "kto-compat measured them: reinstall trl") from None
    _unmeasured("the import location")
    with warnings.catch_warnings():  # probing deprecated shims is our business, not the user's
        warnings.simplefilter("ignore")
        found = discover_once()
    if not found.ok:
        if found.error is not None and not isinstance(found.error, AttributeError):
            raise found.error
        raise MissingPackageError(f"trl {installed_pair()[0]} has no KTOTrainer in any place kto-compat knows "
                                  f"({', '.join(KTO_CANDIDATES)})")
    assert found.config is not None and found.trainer is not None  # what found.ok means
    return found.config, found.trainer


# --------------------------------------------------------------------------- config


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def make_kto_config(**kwargs: Any) -> Any:
    """A KTOConfig as strict as TRL's: unknown fields raise TypeError. A field this TRL renamed
    or removed (CONFIG_RENAMES / CONFIG_REMOVABLE) is translated or dropped, warning once each."""
    config_cls, _ = load_kto()
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}  # init=False fields are refused too
    accepted: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in fields:
            accepted[name] = value
            continue
        alias = next((n for pair in CONFIG_RENAMES if name in pair for n in pair if n != name and n in fields), None)
        if alias:
            if alias in kwargs:  # both spellings given: the one this TRL knows wins
                _warn_once(f"dup:{name}", f"make_kto_config: {name!r} is called {alias!r} in this TRL and {alias!r} "
                           f"was also given; {name!r} is ignored")
            else:
                _warn_once(f"rename:{name}", f"make_kto_config: {name!r} is called {alias!r} in this TRL; passing it "
                           f"as {alias!r}")
                accepted[alias] = value
        elif name in CONFIG_REMOVABLE:
            _warn_once(f"drop:{name}", f"make_kto_config: this TRL's KTOConfig has no {name!r} (other releases do); "
                       "dropped")
        else:
            raise TypeError(f"{config_cls.__name__}.__init__() got an unexpected keyword argument {name!r}")
    cpu_flag = next((n for n in ("use_cpu", "no_cuda") if n in fields), None)
    bf16 = accepted["bf16"] if "bf16" in accepted else _default(config_cls, "bf16")
    if bf16 is None:  # newer TRL defaults bf16 to None and turns it on in __post_init__ unless fp16 is set
        bf16 = not accepted.get("fp16")
    if bf16 and cpu_flag and not any(n in kwargs for n in ("use_cpu", "no_cuda")) and not _cuda_available():
        # TrainingArguments refuses bf16 on a machine without a bf16 GPU unless told to use the CPU;
        # the cells train exactly this way (BF16 as CPU autocast).
        _warn_once("cpu", f"make_kto_config: no CUDA device: setting {cpu_flag}=True so bf16 runs as CPU autocast")
        accepted[cpu_flag] = True
    return config_cls(**accepted)


def _default(config_cls: type, name: str) -> Any:
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            return f.default
    return None


# --------------------------------------------------------------------------- trainer


def _explicit_inits(cls: type) -> list[tuple[type, Any, inspect.Signature]]:
    """Every ``__init__`` up the MRO that names its parameters (``*args, **kwargs`` forwarders skipped)."""
    forwarding = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    out = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        if not {p.kind for p in list(sig.parameters.values())[1:]} <= forwarding:
            out.append((klass, init, sig))
    return out


def _renames(init: Any) -> dict[str, str]:
    """Old -> new keyword names a deprecation wrapper around ``init`` translates.

    transformers wraps ``Trainer.__init__`` in ``deprecate_kwarg("tokenizer",
    new_name="processing_class")`` (and TRL 0.12-0.13 their trainers): the
    signature shows only the new name, the wrapper turns the old one into it.
    It keeps both names in its closure. A wrapper set to raise once its
    version is reached translates nothing.
    """
    out: dict[str, str] = {}
    seen: set[int] = set()
    while init is not None and id(init) not in seen and len(seen) < 16:  # a __wrapped__ cycle ends here
        seen.add(id(init))
        try:
            names = inspect.getclosurevars(init).nonlocals
        except (TypeError, ValueError):
            names = {}
        old, new = names.get("old_name"), names.get("new_name")
        raises = names.get("raise_if_greater_or_equal_version") is True and names.get("is_greater_or_equal_version") is True
        if isinstance(old, str) and isinstance(new, str) and not raises:
            out[old] = new
        init = getattr(init, "__wrapped__", None)
    return out


def _refusal(chain: list[tuple[type, Any, inspect.Signature]], keyword: str) -> str | None:
    """Why ``keyword`` cannot pass down the constructor chain, or None when every class takes it.

    Each class receives the name the class above passed on: a deprecation
    wrapper that renames it (old -> new) hands the new name down, so TRL 0.12's
    ``tokenizer=`` reaches transformers' Trainer as ``processing_class=``.
    """
    name, renamed_by = keyword, None
    for klass, init, sig in chain:
        new = _renames(init).get(name)
        if new is not None:
            name, renamed_by = new, klass
        params = sig.parameters
        if name in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        where = f"{klass.__module__}.{klass.__qualname__}.__init__ does not take {name}="
        if renamed_by is not None:
            where += f" ({keyword}= becomes {name}= in {renamed_by.__module__}.{renamed_by.__qualname__}.__init__)"
        return where
    return None


def introspect_keyword(trainer_cls: type) -> str:
    """The tokenizer keyword every constructor in the trainer's chain takes, transformers' ``Trainer`` included.

    A keyword the subclass takes but the base Trainer does not (TRL 0.11's
    ``tokenizer=`` under transformers 5) cannot work, whatever the subclass
    signature says. Where neither keyword survives the chain, the pair is broken.
    """
    chain = _explicit_inits(trainer_cls)
    if not chain:
        raise TypeError(f"{trainer_cls.__qualname__}: no explicit __init__ signature to inspect")
    refusals: list[str] = []
    for kw in KEYWORDS:
        why = _refusal(chain, kw)
        if why is None:
            return kw
        refusals.append(why)
    pair = installed_pair()
    raise BrokenPairError("\n".join([f"trl {pair[0]} + transformers {pair[1]}: no tokenizer keyword can build "
                                     f"{trainer_cls.__name__}: " + "; ".join(refusals), *_nearest_lines(pair)]))


def make_kto_trainer(model: Any, ref_model: Any = None, args: Any = None, train_dataset: Any = None,
                     tokenizer: Any = None, eval_dataset: Any = None, **kwargs: Any) -> Any:
    """Build KTOTrainer with the tokenizer under the keyword measured for this pair; all by keyword.

    The tokenizer may come as ``tokenizer=`` or ``processing_class=`` (scripts
    of either era); passing both is ambiguous and refused.
    """
    _, trainer_cls = load_kto()
    given = [kw for kw in KEYWORDS if kw in kwargs] + (["tokenizer"] if tokenizer is not None else [])
    if len(given) > 1:
        raise TypeError(f"make_kto_trainer: got the tokenizer twice ({' and '.join(sorted(set(given)))}); pass one")
    for kw in KEYWORDS:  # a caller may already use the new name
        if kw in kwargs:
            tokenizer = kwargs.pop(kw)
    if tokenizer is None:
        raise TypeError("make_kto_trainer: missing the tokenizer (tokenizer= or processing_class=)")
    named = {"model": model, "ref_model": ref_model, "args": args, "train_dataset": train_dataset}
    if eval_dataset is not None:
        named["eval_dataset"] = eval_dataset
    keyword = lookup("keyword", warn=True)
    if keyword is None:
        _unmeasured("the tokenizer keyword")
        keyword = introspect_keyword(trainer_cls)
    return trainer_cls(**named, **kwargs, **{keyword: tokenizer})


# Drop-in names: `from kto_compat import KTOConfig, KTOTrainer` with TRL's own keywords.
def KTOConfig(**kwargs: Any) -> Any:  # noqa: N802 - mirrors TRL's class name on purpose
    """``trl.KTOConfig(...)`` through :func:`make_kto_config`."""
    return make_kto_config(**kwargs)


def KTOTrainer(model: Any, ref_model: Any = None, args: Any = None, train_dataset: Any = None,  # noqa: N802
               eval_dataset: Any = None, processing_class: Any = None, tokenizer: Any = None, **kwargs: Any) -> Any:
    """``trl.KTOTrainer(...)`` through :func:`make_kto_trainer`: either tokenizer keyword works."""
    if processing_class is not None:
        kwargs["processing_class"] = processing_class
    return make_kto_trainer(model, ref_model, args, train_dataset, tokenizer=tokenizer, eval_dataset=eval_dataset,
                            **kwargs)


# --------------------------------------------------------------------------- data


def format_dataset(dataset: Any, tokenizer: Any, on_invalid: Literal["raise", "drop"] = "raise") -> Any:
    """Rows in the form this TRL expects; invalid rows raise ValueError naming the row, or are dropped and counted.

    Conversational rows are left for trainers measured to template them
    (repaired where this TRL refuses a prompt's last role), and pre-rendered to
    text for the rest.
    """
    check_pair()  # formatting a large dataset is heavy work too: refuse a broken pair first
    rows = dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)
    mode = lookup("format_mode", warn=True)
    if mode is None:
        _unmeasured("the dataset format")
        mode = "text"  # pre-rendered text trains on every trainer; conversational needs a measured trainer
    roles = lookup("prompt_roles", warn=True)
    accepted = frozenset(r for r in str(roles).split(",") if r) if roles is not None else None
    out, dropped = format_rows(rows, tokenizer, on_invalid=on_invalid,
                               mode="conversational" if mode == "conversational" else "text", prompt_roles=accepted)
    if mode == "conversational" and len({isinstance(r["prompt"], str) for r in out}) > 1:
        out, _ = format_rows(out, tokenizer, on_invalid="raise", mode="text")  # one column type per dataset
    if dropped:
        warnings.warn(f"format_dataset: dropped {dropped} invalid row(s) of {len(rows)}", AdapterWarning, stacklevel=2)
    format_dataset.last_dropped = dropped  # type: ignore[attr-defined]
    if hasattr(dataset, "to_list"):
        return type(dataset).from_list(out)
    return out

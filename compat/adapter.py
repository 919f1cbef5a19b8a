"""One KTO training script for every TRL x transformers pair.

Training scripts call ``load_kto``, ``make_kto_config``, ``make_kto_trainer``
and ``format_dataset`` instead of writing version checks. Every decision comes
from ``findings.json``, which ``python -m compat findings`` generates from
measured cells; this file holds no version boundary of its own. For a pair
outside the measured ranges it falls back to introspecting the installed
classes and warns that the pair is unmeasured. For a pair measured broken it
refuses up front, naming the failure and the nearest working pairs.

Cell code: imports and works on every pair. ``python -m compat export-adapter``
inlines this module and its two helpers into one file with the findings
embedded, for repositories that do not install kto-compat.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from compat.formatting import format_rows  # export: inline
from compat.kto_import import discover_kto_once  # export: inline

__all__ = [
    "AdapterWarning", "BrokenPairError", "UnmeasuredPairWarning",
    "format_dataset", "installed_pair", "load_kto", "lookup", "make_kto_config", "make_kto_trainer",
]

# Embedded by export-adapter; the package reads findings.json beside this file.
FINDINGS: dict[str, Any] | None = None

KEYWORDS = ("processing_class", "tokenizer")
# Field names that mean the same thing under different names (transformers'
# TrainingArguments and TRL's configs renamed these). Names only - which one
# the installed KTOConfig has is read from its dataclass fields.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("eval_strategy", "evaluation_strategy"),
    ("use_cpu", "no_cuda"),
    ("max_length", "max_seq_length"),
    ("processing_class", "tokenizer"),
)


class AdapterWarning(UserWarning):
    """The adapter changed or dropped something the script asked for."""


class UnmeasuredPairWarning(UserWarning):
    """The installed pair is outside every measured range; decisions come from introspection."""


class BrokenPairError(RuntimeError):
    """The installed pair was measured broken; raised before any heavy work."""


_warned: set[str] = set()


def _warn_once(key: str, message: str, category: type[Warning] = AdapterWarning) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, category, stacklevel=3)


def installed_pair() -> tuple[str, str]:
    return metadata.version("trl"), metadata.version("transformers")


@functools.cache
def findings() -> dict[str, Any]:
    if FINDINGS is not None:
        return FINDINGS
    path = Path(__file__).with_name("findings.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"facts": {}, "working": []}


def _contains(spec: str, version: str) -> bool:
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def lookup(fact: str, pair: tuple[str, str] | None = None) -> Any | None:
    """The measured value of ``fact`` for ``pair`` (default: installed), or None if unmeasured."""
    trl, tf = pair or installed_pair()
    for rule in findings().get("facts", {}).get(fact, []):
        if _contains(rule["trl"], trl) and _contains(rule["transformers"], tf):
            return rule["value"]
    return None


def nearest_working(pair: tuple[str, str], limit: int = 3) -> list[tuple[str, str]]:
    """Measured-compatible pairs closest to ``pair``: same TRL first, then same transformers."""
    trl, tf = Version(pair[0]), Version(pair[1])

    def distance(p: list[str]) -> tuple[int, float]:
        a, b = Version(p[0]), Version(p[1])
        tier = 0 if a == trl else 1 if b == tf else 2
        gap = abs(_ordinal(a) - _ordinal(trl)) + abs(_ordinal(b) - _ordinal(tf))
        return tier, gap

    ranked = sorted(findings().get("working", []), key=lambda p: (*distance(p), p))
    return [(p[0], p[1]) for p in ranked[:limit]]


def _ordinal(v: Version) -> float:
    major, minor, micro = (list(v.release) + [0, 0, 0])[:3]
    return major * 1000 + minor + micro / 1000


def advice(pair: tuple[str, str], broken: dict[str, Any]) -> str:
    near = nearest_working(pair)
    lines = [
        f"trl {pair[0]} + transformers {pair[1]} was measured broken by kto-compat: it fails at the "
        f"'{broken.get('stage')}' stage with: {broken.get('message')}"
        + (f" (raised by {broken['raised_by']})" if broken.get("raised_by") else ""),
    ]
    if near:
        lines.append("Nearest measured working pairs: " + "; ".join(f"trl {a} + transformers {b}" for a, b in near))
        lines.append(f"To move to the nearest one: pip install 'trl=={near[0][0]}' 'transformers=={near[0][1]}'")
    return "\n".join(lines)


def check_pair(pair: tuple[str, str] | None = None) -> None:
    """Refuse a measured-broken pair before anything heavy is imported or built."""
    pair = pair or installed_pair()
    broken = lookup("broken", pair)
    if broken:
        raise BrokenPairError(advice(pair, broken))


def _unmeasured(what: str) -> None:
    trl, tf = installed_pair()
    _warn_once(f"unmeasured:{what}", f"trl {trl} + transformers {tf} is outside the measured ranges; "
               f"{what} is decided by introspecting the installed classes", UnmeasuredPairWarning)


@functools.cache
def load_kto() -> tuple[type, type]:
    """``(KTOConfig, KTOTrainer)`` from the location measured to work without deprecation warnings."""
    check_pair()
    try:
        return _import_kto()
    except Exception as exc:  # noqa: BLE001 - re-raised unless the findings explain it
        drift = lookup("drift")
        if drift:
            raise BrokenPairError(drift_advice(installed_pair(), drift, exc)) from exc
        raise


def drift_advice(pair: tuple[str, str], drift: dict[str, Any], exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0]
    return (f"trl {pair[0]} + transformers {pair[1]} fails at import here ({type(exc).__name__}: {first}). "
            f"kto-compat measured this as dependency drift, not a fault of the pair: with today's dependencies it fails "
            f"with '{drift.get('message')}'. Install the dependencies as of the pair's release (see the as-of-release "
            f"cells of the compatibility report) or the missing package, or move to a measured working pair.")


def _import_kto() -> tuple[type, type]:
    path = lookup("import_path")
    if path:
        module = importlib.import_module(path)
        return module.KTOConfig, module.KTOTrainer
    _unmeasured("the import location")
    with warnings.catch_warnings():  # probing deprecated shims is our business, not the user's
        warnings.simplefilter("ignore")
        found = discover_kto_once()
    if not found.ok:
        raise found.error or ImportError("no KTOTrainer found in the installed trl")
    return found.config, found.trainer


def make_kto_config(**kwargs: Any) -> Any:
    """A KTOConfig from the fields this TRL has: synonyms renamed, unknown fields dropped, each warned once."""
    config_cls, _ = load_kto()
    # init=False fields exist on the dataclass but the constructor refuses them.
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    accepted: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in fields:
            accepted[name] = value
            continue
        alias = next((n for group in SYNONYMS if name in group for n in group if n != name and n in fields), None)
        if alias and alias in kwargs:
            # Both spellings given: the one this TRL knows was passed explicitly and wins.
            _warn_once(f"dup:{name}", f"make_kto_config: field {name!r} is called {alias!r} in this TRL and "
                       f"{alias!r} was also given; dropped {name!r}")
        elif alias:
            _warn_once(f"rename:{name}", f"make_kto_config: field {name!r} is called {alias!r} in this TRL; passing it as {alias!r}")
            accepted[alias] = value
        else:
            _warn_once(f"drop:{name}", f"make_kto_config: field {name!r} does not exist in this TRL's KTOConfig; dropped")
    return config_cls(**accepted)


def _explicit_init(cls: type) -> inspect.Signature | None:
    """The first ``__init__`` up the MRO that names its parameters (skips ``*args, **kwargs`` forwarders)."""
    forwarding = {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        if not {p.kind for p in list(sig.parameters.values())[1:]} <= forwarding:
            return sig
    return None


def introspect_keyword(trainer_cls: type, probe: dict[str, Any]) -> str:
    """The tokenizer keyword the installed KTOTrainer's real signature binds, checked with bind_partial."""
    sig = _explicit_init(trainer_cls)
    if sig is None:
        raise TypeError(f"{trainer_cls.__qualname__}: no explicit __init__ signature to inspect")
    for kw in KEYWORDS:
        if kw not in sig.parameters:
            continue
        try:
            sig.bind_partial(None, **probe, **{kw: object()})
        except TypeError:
            continue
        return kw
    raise TypeError(f"{trainer_cls.__qualname__}.__init__ accepts neither of {KEYWORDS}")


def make_kto_trainer(model: Any, ref_model: Any, args: Any, train_dataset: Any, tokenizer: Any = None,
                     eval_dataset: Any = None, **kwargs: Any) -> Any:
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
    keyword = lookup("keyword")
    if keyword is None:
        _unmeasured("the tokenizer keyword")
        keyword = introspect_keyword(trainer_cls, {**named, **kwargs})
    if keyword != "tokenizer":
        _warn_once(f"kw:{keyword}", f"make_kto_trainer: passing the tokenizer as {keyword}= (this pair's KTOTrainer takes that keyword)")
    return trainer_cls(**named, **kwargs, **{keyword: tokenizer})


def format_dataset(dataset: Any, tokenizer: Any, on_invalid: str = "raise") -> Any:
    """Rows in the form this TRL expects; invalid rows raise ValueError naming the row, or are dropped and counted."""
    check_pair()  # formatting a large dataset is heavy work too: refuse a broken pair first
    rows = dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)
    mode = lookup("format_mode")
    if mode is None:
        _unmeasured("the dataset format")
        mode = "text"  # pre-rendered text trains on every trainer; conversational needs a measured trainer
    out, dropped = format_rows(rows, tokenizer, on_invalid=on_invalid, mode=mode)
    if mode == "conversational" and len({isinstance(r["prompt"], str) for r in out}) > 1:
        out, _ = format_rows(out, tokenizer, on_invalid="raise", mode="text")  # one column type per dataset
    if dropped:
        warnings.warn(f"format_dataset: dropped {dropped} invalid row(s) of {len(rows)}", AdapterWarning, stacklevel=2)
    format_dataset.last_dropped = dropped  # type: ignore[attr-defined]
    if hasattr(dataset, "to_list"):
        return type(dataset).from_list(out)
    return out

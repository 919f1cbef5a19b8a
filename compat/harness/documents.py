"""Stored results: the one way in and out for compat.json and cached cells, and the bounded
reader of every other JSON document the host reads (findings files, index listings, model configs).
One loader of stored results (``load_results``) and one writer (``dumps_document`` for compat.json,
``write_cells`` for cells/), whichever command reads or writes them.

Host side. Every document read is checked against compat/schema/compat.schema.json, and with what a
hostile or broken file needs: only a regular file is read (a FIFO would block, a device never end),
its size is capped, its nesting is capped (100,000 nested brackets are a RecursionError in the
parser and again in the validator), and a document may hold each cell only once, versions equal
under PEP 440 (1.0 and 1.0.0) counting as one.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from packaging.version import Version

from compat import probes
from compat.cell.validate import SchemaError, validate
from compat.contract import AXES, FIELDS, CellResult, ContractError, Resolution, Status
from compat.harness.files import atomic_write, kind

SCHEMA_VERSION = 3  # 3: cells gain `axes` (further axes), `lock` and `failure.platform`
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema"

MAX_BYTES = 256 * 2**20  # the full profile's compat.json is under 5 MB
MAX_DEPTH = 64  # the contract's deepest document nests 6 levels


def read_text(path: Path, limit: int = MAX_BYTES) -> str:
    """A regular file's text; anything else is a ContractError naming the file (nothing is opened first)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ContractError(f"{path}: is {kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise ContractError(f"{path}: {st.st_size} bytes, over the {limit} byte limit for a JSON document")
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise ContractError(f"{path}: cannot read: no such file") from None
    except OSError as exc:
        raise ContractError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ContractError(f"{path}: over the {limit} byte limit for a JSON document")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not UTF-8 text") from None


def depth(value: Any) -> int:
    """How deeply containers nest (iteratively: a deep document must not exhaust the stack here either)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def loads(text: str, source: str) -> Any:
    """JSON within the size and nesting limits; a ContractError names the source otherwise."""
    if len(text) > MAX_BYTES:
        raise ContractError(f"{source}: over the {MAX_BYTES} byte limit for a JSON document")
    try:
        data = json.loads(text)
    except RecursionError:
        raise ContractError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise ContractError(f"{source}: not JSON: {exc}") from None
    if depth(data) > MAX_DEPTH:
        raise ContractError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels")
    return data


def load_json(path: Path) -> Any:
    return loads(read_text(path), str(path))


def unique(cells: Sequence[CellResult], source: str) -> None:
    """One document, one entry per cell: two would let one reader show one verdict and another the other."""
    seen: dict[tuple[Any, ...], CellResult] = {}
    for cell in cells:
        other = seen.setdefault(cell.key, cell)
        if other is not cell:
            same = "twice" if str(other.trl) == str(cell.trl) and str(other.transformers) == str(cell.transformers) \
                else f"twice, as {other.id} and {cell.id} (versions equal under PEP 440)"
            raise ContractError(f"{source}: holds cell {other.id} {same}; a document holds each cell once")


@cache
def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def _cell_schema() -> dict[str, Any]:
    whole = _schema("compat")
    return {**whole["$defs"]["cell"], "$defs": whole["$defs"]}


def schema(name: str) -> dict[str, Any]:
    """The committed JSON Schema `compat` or `findings` (a copy: callers may not edit the cached one)."""
    return json.loads(json.dumps(_schema(name)))


def _validated(data: Any, which: dict[str, Any], source: str) -> None:
    try:
        validate(data, which, source)
    except SchemaError as exc:
        raise ContractError(str(exc)) from None


@dataclass(frozen=True)
class Document:
    """One compat.json: run metadata and its cells."""

    meta: dict[str, Any]
    cells: tuple[CellResult, ...]


def loads_document(text: str, source: str = "compat.json") -> Document:
    """Parse (within bounds), validate and expand a compat.json; ContractError names the source and what is wrong."""
    data = loads(text, source)
    _validated(data, _schema("compat"), source)
    tables = data.get("formatter_tables", [])
    cells = []
    for i, raw in enumerate(data["cells"]):
        raw = dict(raw)
        formatter = {}
        for kind_, value in (raw.get("formatter") or {}).items():
            if isinstance(value, int):
                if value >= len(tables):
                    raise ContractError(f"{source}: cells[{i}].formatter.{kind_}: no formatter_tables[{value}]")
                value = tables[value]
            formatter[kind_] = value
        raw["formatter"] = formatter
        try:
            cells.append(CellResult.from_dict(raw))
        except ContractError as exc:
            raise ContractError(f"{source}: cells[{i}]: {exc}") from None
    meta = {k: v for k, v in data.items() if k not in ("cells", "schema_version", "formatter_tables")}
    unique(cells, source)
    return Document(meta, tuple(cells))


def load_document(path: Path) -> Document:
    return loads_document(read_text(path), str(path))


def document_data(meta: Mapping[str, Any], cells: Iterable[CellResult]) -> dict[str, Any]:
    """The compact JSON form of compat.json: each distinct formatter map stored once; validated."""
    tables: dict[str, int] = {}
    out_cells = []
    for r in sorted(cells, key=lambda c: c.key):
        d = r.serialize()
        d.pop("cache_key", None)
        if not d.get("axes"):
            d.pop("axes", None)  # a two-axis cell reads as it always did
        refs = {}
        for kind_, outcomes in sorted(r.formatter.items()):
            text = json.dumps(outcomes, sort_keys=True)
            refs[kind_] = tables.setdefault(text, len(tables))
        d["formatter"] = refs
        out_cells.append(d)
    ordered = sorted(tables, key=tables.__getitem__)
    data = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in meta.items() if k not in ("cells", "schema_version")},
            "formatter_tables": [json.loads(t) for t in ordered], "cells": out_cells}
    _validated(data, _schema("compat"), "compat.json being written")
    return data


_DEFAULTS = {k: v for k, v in CellResult(Version("0"), Version("0"), Resolution.LATEST, Status.ERROR).serialize().items()
             if k not in (*AXES, "resolution", "status")}


# JSON is written ASCII-escaped: a lone surrogate in an error message (seen in the wild) would
# otherwise stop the UTF-8 encoder halfway through a report.
def dumps_document(meta: Mapping[str, Any], cells: Iterable[CellResult]) -> str:
    """compat.json as published: one cell per line (a git diff shows the cells that changed), no
    indentation, and fields at their contract default left out (readers restore them; the schema
    says so). At the full profile's ~2,000 cells this keeps the file under 5 MB."""
    data = document_data(meta, cells)
    rows = [json.dumps({k: v for k, v in c.items() if k not in _DEFAULTS or v != _DEFAULTS[k]},
                       sort_keys=True, ensure_ascii=True, separators=(",", ":")) for c in data.pop("cells")]
    head = json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return head[:-1] + ',"cells":[\n' + ",\n".join(rows) + "\n]}\n"


def dumps_cell(result: CellResult) -> str:
    return json.dumps(result.serialize(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def loads_cell(text: str, source: str) -> CellResult:
    data = loads(text, source)
    _validated(data, _cell_schema(), source)
    try:
        return CellResult.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise ContractError(f"{source}: {exc}") from None


def load_cell(path: Path) -> CellResult:
    return loads_cell(read_text(path), str(path))


def outcome(result: CellResult) -> dict[str, Any]:
    """What a cell observed about its pair: the part two runs of one cell must agree on.
    Timings, logs, locks and cache keys differ between any two runs and are left out."""
    data = result.serialize()
    keys = ["status", "failure", "formatter", "adapter", "environment"]
    keys += sorted({p.key.partition(".")[0] if p.key.partition(".")[0] in FIELDS else "probes" for p in probes.PROBES})
    return {k: data.get(k) for k in dict.fromkeys(keys)}


# --------------------------------------------------------------------------- stored results


@dataclass(frozen=True)
class Source:
    """Stored results: where they were read from, their cells and their compat.json's metadata."""

    path: Path
    cells: tuple[CellResult, ...]
    meta: dict[str, Any]


def load_results(path: Path, missing_ok: bool = False) -> Source:
    """The one loader of stored results: a compat.json, or a results directory (its compat.json, else its
    cells/*.json). A file that cannot be read or is not valid results is a ContractError naming it (the
    CLI prints one line, exit 2); none is skipped, as a skipped file would drop what it measured.
    ``missing_ok``: a path that does not exist yet (a first run) holds no results instead of an error."""
    if not os.path.lexists(path):
        if missing_ok:
            return Source(path.parent if path.suffix == ".json" else path, (), {})
        raise ContractError(f"{path}: no such file or directory")
    report = path / "compat.json" if path.is_dir() else path
    if os.path.lexists(report):
        doc = load_document(report)
        return Source(report.parent, doc.cells, dict(doc.meta))
    cells = tuple(load_cell(p) for p in sorted((path / "cells").glob("*.json")))
    if not cells and not missing_ok:
        raise ContractError(f"{path}: holds no results (no compat.json, no cells/*.json)")
    return Source(path, cells, {})


def write_cells(out: Path, cells: Iterable[CellResult]) -> None:
    """Each cell as ``out/cells/<id>.json``; the file name comes from the parsed cell, never from input text."""
    for cell in cells:
        atomic_write(out / "cells" / f"{cell.id}.json", dumps_cell(cell))

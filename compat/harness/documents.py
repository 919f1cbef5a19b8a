"""Every JSON document the host reads, read with bounds: the one way in for compat.json, cached
cells, findings files, index listings and model configs.

Host side; wraps the contract's parsers (which stay byte-identical, being part of the cell suite)
with what a hostile or broken file needs: only a regular file is read (a FIFO would block, a
device never end), its size is capped, its nesting is capped (100,000 nested brackets are a
RecursionError in the parser and again in the validator), and a document may hold each cell only
once, versions equal under PEP 440 (1.0 and 1.0.0) counting as one.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compat import contract
from compat.contract import CellResult, ContractError, Document
from compat.harness.files import kind

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


def loads_document(text: str, source: str) -> Document:
    loads(text, source)  # the bounds, before the contract's own (recursive) parse and validation
    doc = contract.loads_document(text, source)
    unique(doc.cells, source)
    return doc


def load_document(path: Path) -> Document:
    return loads_document(read_text(path), str(path))


def loads_cell(text: str, source: str) -> CellResult:
    loads(text, source)
    return contract.loads_cell(text, source)


def load_cell(path: Path) -> CellResult:
    return loads_cell(read_text(path), str(path))

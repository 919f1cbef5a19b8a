"""A small JSON Schema validator: the subset compat/schema/*.json uses.

Cell code with no dependencies beyond the standard library, because the
adapter validates findings.json inside users' training environments (and the
exported single-file adapter carries it along), where the `jsonschema`
package may be missing. tests/unit checks that it agrees with `jsonschema`
on the committed schemas, so the subset cannot drift from the real thing.

Supported keywords: type, enum, const, properties, required,
additionalProperties, patternProperties, items, prefixItems, minItems,
maxItems, minimum, maximum, exclusiveMinimum, pattern, minLength,
maxLength, anyOf, oneOf, $ref (to #/$defs/NAME). Others are an error, so a
schema edit cannot silently weaken validation.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["SchemaError", "errors", "validate"]

_KNOWN = {
    "$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples",
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
    "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum",
    "pattern", "minLength", "maxLength", "anyOf", "oneOf", "$ref",
}
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


class SchemaError(ValueError):
    """A document does not match its schema; the message names the path and the rule."""


def _where(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "(top level)"


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], path: tuple[str | int, ...], out: list[str]) -> None:
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by compat.cell.validate")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        _check(value, root["$defs"][ref.removeprefix("#/$defs/")], root, path, out)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            out.append(f"{_where(path)}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{_where(path)}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{_where(path)}: expected {schema['const']!r}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            pass  # NaN/inf losses are data; bounds do not apply to them
        else:
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{_where(path)}: {value} is below the minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{_where(path)}: {value} is above the maximum {schema['maximum']}")
            if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
                out.append(f"{_where(path)}: {value} must be above {schema['exclusiveMinimum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{_where(path)}: {value[:80]!r} does not match {schema['pattern']!r}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{_where(path)}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{_where(path)}: longer than {schema['maxLength']}")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                out.append(f"{_where(path)}: missing required field {name!r}")
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            matched = False
            if key in props:
                matched = True
                _check(item, props[key], root, (*path, key), out)
            for pattern, sub in patterns.items():
                if re.search(pattern, key):
                    matched = True
                    _check(item, sub, root, (*path, key), out)
            if not matched:
                if extra is False:
                    out.append(f"{_where(path)}: unexpected field {key!r}")
                elif isinstance(extra, dict):
                    _check(item, extra, root, (*path, key), out)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{_where(path)}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{_where(path)}: more than {schema['maxItems']} items")
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            if i < len(prefix):
                _check(item, prefix[i], root, (*path, i), out)
            elif isinstance(schema.get("items"), dict):
                _check(item, schema["items"], root, (*path, i), out)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            passing = 0
            first: list[str] = []
            for sub in schema[key]:
                found: list[str] = []
                _check(value, sub, root, path, found)
                passing += not found
                first = first or found
            if passing == 0 or (key == "oneOf" and passing > 1):
                why = first[0] if passing == 0 and first else f"matches {passing} alternatives"
                out.append(f"{_where(path)}: matches no allowed form ({why})" if passing == 0 else f"{_where(path)}: {why}")


def errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Every mismatch, each naming its path; empty when ``value`` is valid."""
    out: list[str] = []
    _check(value, schema, schema, (), out)
    return out


def validate(value: Any, schema: dict[str, Any], what: str = "document") -> None:
    """Raise :class:`SchemaError` naming the first mismatch (and how many more there are)."""
    found = errors(value, schema)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise SchemaError(f"{what}: {found[0]}{more}")

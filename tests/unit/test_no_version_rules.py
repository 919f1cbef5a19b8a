"""The adapter and the cell-side discovery hold no hand-typed version boundary:
every version they compare against comes from findings.json."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

COMPAT = Path(__file__).parents[2] / "compat"
VERSIONISH = re.compile(r"\d+\.\d+")


@pytest.mark.parametrize("name", ["cell/adapter.py", "cell/discover.py", "cell/formatting.py"])
def test_no_version_literals(name):
    tree = ast.parse((COMPAT / name).read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    offenders = [
        (node.lineno, node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in docstrings
        and ((isinstance(node.value, str) and VERSIONISH.search(node.value)) or isinstance(node.value, float))
    ]
    assert offenders == [], f"compat/{name} hard-codes version-like values: {offenders}"
    assert "__version__" not in (COMPAT / name).read_text()  # no version checks against installed packages

"""A throwaway project for CLI tests: matrix.toml, a pre-populated index cache and the fake uv.

Same pattern as test_reliability's `project` fixture, reusable by several test
files: nothing touches the network or installs anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def listing(*versions: str) -> dict:
    return {"files": [{"filename": f"x-{v}.tar.gz", "upload-time": f"2025-01-{i % 28 + 1:02d}T00:00:00Z"}
                      for i, v in enumerate(versions)]}


def matrix(*grids: tuple[list[str], list[str]], cell_timeout: int | None = None) -> str:
    """A matrix.toml whose default profile is the union of the (trl, transformers) grids given."""
    lines = ["[settings]", 'python = "3.11"', *([f"cell_timeout = {cell_timeout}"] if cell_timeout else []), "[profiles.default]"]
    for trl, transformers in grids:
        lines += ["[[profiles.default.grid]]", f"trl = {json.dumps(trl)}", f"transformers = {json.dumps(transformers)}"]
    return "\n".join(lines) + "\n"


def make(root: Path, matrix: str, trl: list[str], transformers: list[str]) -> Path:
    (root / "matrix.toml").write_text(matrix)
    idx = root / ".compat" / "index"
    idx.mkdir(parents=True, exist_ok=True)
    (idx / "trl.json").write_text(json.dumps(listing(*trl)))
    (idx / "transformers.json").write_text(json.dumps(listing(*transformers)))
    uv = root / "uv"
    uv.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'tests' / 'unit' / 'fake_uv.py'} \"$@\"\n")
    uv.chmod(0o755)
    return root


def compat(project: Path, *args: str, config: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m compat ARGS` against the project (its matrix.toml unless config=False), fake uv."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), "COMPAT_UV": str(project / "uv"), "FAKE_CELL_SLEEP": "0", **env}
    cmd = [sys.executable, "-m", "compat", *args, *(["--config", str(project / "matrix.toml")] if config else [])]
    return subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True, timeout=300)

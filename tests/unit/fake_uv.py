"""A stand-in for the uv binary (COMPAT_UV=this file) so CLI tests run without installs.

`pip compile` writes a lock naming the pair; `venv` makes a venv whose
`bin/python` is a shell script that writes canned cell observations after
sleeping FAKE_CELL_SLEEP seconds; `python find` succeeds only for 3.11.
"""

import json
import os
import stat
import sys
from pathlib import Path

OBS = {"import_path": "trl", "keyword": {"processing_class": "accepted", "tokenizer": "rejected"},
       "training": {"device": "cpu", "dtype": "bfloat16", "steps": 3, "losses": [0.5, 0.49, 0.45]},
       "failures": {}, "warnings": [], "environment": {}, "pytest_exit": 0}


def main(argv: list[str]) -> int:
    if argv[:2] == ["python", "find"]:
        return 0 if argv[2] == "3.11" else 2
    if argv[:2] == ["pip", "compile"]:
        src, out = Path(argv[argv.index("-o") - 1]), Path(argv[argv.index("-o") + 1])
        out.write_text(src.read_text())
        return 0
    if argv[0] == "venv":
        env = Path(argv[-1])
        exe = env / "bin" / "python"
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text(f"#!/bin/sh\nsleep ${{FAKE_CELL_SLEEP:-0}}\ncat > \"$COMPAT_CELL_RESULT\" <<'EOF'\n{json.dumps(OBS)}\nEOF\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        return 0
    if argv[:2] == ["pip", "sync"]:
        return 0
    print(f"fake uv: unsupported {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

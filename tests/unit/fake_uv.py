"""A stand-in for the uv binary (COMPAT_UV=this file) so CLI tests run without installs.

`pip compile` writes a lock naming the pair; `venv` makes a venv whose
`bin/python` is a shell script that writes canned cell observations after
sleeping FAKE_CELL_SLEEP seconds; `python find` succeeds only for 3.11.

The observations are written as the cell suite streams them: one JSON record
per line to $COMPAT_CELL_RESULT (see compat.contract.fold_observations), one
record per probe, the training and adapter records, one record per test and
pytest's exit status last.

Faults, for the fault tests: FAKE_SYNC_FAIL=TEXT makes `pip sync` fail with
TEXT (e.g. a full disk); FAKE_PYTEST_EXIT=N makes the cell's pytest end with
exit status N; FAKE_SYNC_SLEEP=S makes `pip sync` touch
$FAKE_SYNC_MARK and sleep S seconds (a Ctrl-C lands there); FAKE_INDEX_404=1
makes `pip compile` answer as uv does when the index answers 404; FAKE_FLIP=F
alternates the cell between compatible and failing at train, counting runs
in file F (a flaky pair); FAKE_COMPILE_FAIL=TEXT makes `pip compile` print
TEXT and exit 1 (e.g. uv offline with an empty cache); FAKE_CELL_FAIL=TEXT
makes the cell fail at its adapter check with TEXT as the error (e.g. what an
allocator says when the machine is out of memory). FAKE_ENV_FROM_LOCK=1 makes
the cell record the lock's exact pins as its environment (what a real cell's
suite records of the distributions it installed).

Version-dependent observations (for bisect tests), applied at `pip sync`
from the trl pin in the lock: FAKE_BOUNDARY=V makes trl >= V reject
`tokenizer`; FAKE_UNTESTED_BELOW=V makes trl < V fail at import (as trl
0.11.x does without `rich`), leaving both keywords untested.
"""

import json
import os
import stat
import sys
from pathlib import Path

OBS = {"probes": {"import_path": "trl", "keyword.processing_class": "accepted", "keyword.tokenizer": "rejected",
                  "format_mode": "text"},
       "training": {"device": "cpu", "dtype": "bfloat16", "steps": 3, "losses": [0.5, 0.49, 0.45]},
       "adapter": "pass", "adapter_outcome": "trained",
       "failures": {}, "warnings": [], "environment": {},
       "tests": [("tests/cell/kto/test_kto.py::test_import", "passed", "import", ""),
                 ("tests/cell/kto/test_kto.py::test_keywords", "passed", "construct", ""),
                 ("tests/cell/kto/test_kto.py::test_training", "passed", "train", ""),
                 ("tests/cell/kto/test_adapter.py::test_adapter_trains", "passed", "adapter", "")],
       "exit": 0}


def records(obs: dict) -> list[dict]:
    """The JSON-lines records a cell suite that observed ``obs`` streams."""
    out: list[dict] = [{"set": "environment", "value": obs["environment"]}]
    out += [{"probe": key, "value": value} for key, value in obs["probes"].items()]
    for stage, failure in obs["failures"].items():
        out.append({"failure": stage, **failure})
    out += [{"warning": w} for w in obs["warnings"]]
    for name in ("training", "adapter", "adapter_outcome"):
        if obs.get(name) is not None:
            out.append({"set": name, "value": obs[name]})
    out += [{"test": nodeid, "outcome": outcome, "stage": stage, "message": message}
            for nodeid, outcome, stage, message in obs["tests"]]
    out.append({"exit": obs["exit"]})
    return out


def write_python(env: Path, obs: dict) -> None:
    exe = env / "bin" / "python"
    exe.parent.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(json.dumps(r, sort_keys=True) for r in records(obs))
    exe.write_text(f"#!/bin/sh\nsleep ${{FAKE_CELL_SLEEP:-0}}\ncat > \"$COMPAT_CELL_RESULT\" <<'EOF'\n{lines}\nEOF\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def write_flipping_python(env: Path, counter: Path) -> None:
    """A cell python that trains on odd runs and fails at train on even ones (a flaky pair)."""
    good = "\n".join(json.dumps(r, sort_keys=True) for r in records(OBS))
    bad_obs = {**OBS, "training": {**OBS["training"], "losses": [0.5, "nan", 0.4]}}
    bad = "\n".join(json.dumps(r, sort_keys=True) for r in records(bad_obs))
    exe = env / "bin" / "python"
    exe.write_text(f"""#!/bin/sh
n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "{counter}"
if [ $((n % 2)) -eq 1 ]; then cat > "$COMPAT_CELL_RESULT" <<'EOF'
{good}
EOF
else cat > "$COMPAT_CELL_RESULT" <<'EOF'
{bad}
EOF
fi
""")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def observed(lock: Path) -> dict:
    """OBS, varied by the trl version in the lock as FAKE_BOUNDARY / FAKE_UNTESTED_BELOW ask."""
    from packaging.version import Version

    pins = dict(line.split("==", 1) for line in lock.read_text().splitlines() if "==" in line)
    trl = Version(pins["trl"])
    obs = json.loads(json.dumps(OBS))
    if os.environ.get("FAKE_UNTESTED_BELOW") and trl < Version(os.environ["FAKE_UNTESTED_BELOW"]):
        message = "ModuleNotFoundError: No module named 'rich'"
        return {**obs, "probes": {}, "training": None, "adapter": None, "adapter_outcome": None,
                "failures": {"import": {"message": message}},
                "tests": [("tests/cell/kto/test_kto.py::test_import", "failed", "import", message)], "exit": 1}
    if os.environ.get("FAKE_BOUNDARY"):
        obs["probes"]["keyword.tokenizer"] = "rejected" if trl >= Version(os.environ["FAKE_BOUNDARY"]) else "accepted"
    return obs


def main(argv: list[str]) -> int:
    if argv[:2] == ["python", "find"]:
        if argv[2] != "3.11":
            return 2
        print(sys.executable)  # as uv does: the interpreter's path
        return 0
    if argv[:2] == ["pip", "compile"]:
        src, out = Path(argv[argv.index("-o") - 1]), Path(argv[argv.index("-o") + 1])
        if os.environ.get("FAKE_COMPILE_FAIL"):
            print(os.environ["FAKE_COMPILE_FAIL"], file=sys.stderr)
            return 1
        if os.environ.get("FAKE_INDEX_404"):
            print("error: No solution found when resolving dependencies\n  cause: Because trl was not found in the "
                  "package registry and you require trl==1.0.0, we can conclude that your requirements are "
                  "unsatisfiable.", file=sys.stderr)
            return 1
        out.write_text(src.read_text())
        return 0
    if argv[0] == "venv":
        write_python(Path(argv[-1]), OBS)
        return 0
    if argv[:2] == ["pip", "sync"]:
        if os.environ.get("FAKE_SYNC_SLEEP"):
            Path(os.environ["FAKE_SYNC_MARK"]).touch()
            import time

            time.sleep(float(os.environ["FAKE_SYNC_SLEEP"]))
        if os.environ.get("FAKE_SYNC_FAIL"):  # the machine failing (a full disk), not the pair
            print(f"error: Failed to install: {os.environ['FAKE_SYNC_FAIL']}", file=sys.stderr)
            return 2
        env = Path(argv[argv.index("--python") + 1]).parent.parent
        if os.environ.get("FAKE_PYTEST_EXIT"):  # pytest itself broke: 3 internal error, 4 usage, 5 no tests
            write_python(env, {**OBS, "exit": int(os.environ["FAKE_PYTEST_EXIT"])})
        if os.environ.get("FAKE_BOUNDARY") or os.environ.get("FAKE_UNTESTED_BELOW"):
            write_python(env, observed(Path(argv[-1])))
        if os.environ.get("FAKE_CELL_FAIL"):
            message = os.environ["FAKE_CELL_FAIL"]
            write_python(env, {**OBS, "adapter": "fail", "failures": {"adapter": {"message": message}},
                               "tests": OBS["tests"][:3] + [("tests/cell/kto/test_adapter.py::test_adapter_trains",
                                                             "failed", "adapter", message)], "exit": 1})
        if os.environ.get("FAKE_FLIP"):
            write_flipping_python(env, Path(os.environ["FAKE_FLIP"]))
        if os.environ.get("FAKE_ENV_FROM_LOCK"):
            pins = dict(line.split("==", 1) for line in Path(argv[-1]).read_text().splitlines() if "==" in line)
            write_python(env, {**OBS, "environment": {k: v for k, v in pins.items() if k != "pytest"}})
        return 0
    print(f"fake uv: unsupported {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

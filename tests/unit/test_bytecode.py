"""The shared bytecode store with real files: sources hard-linked between two environments (as uv
links them from its cache) share compiled bytecode through the store."""

from __future__ import annotations

import os
import py_compile
import time
from pathlib import Path

from compat.harness import bytecode

TAG = bytecode.TAG


def env_with(root: Path, sources: dict[str, Path] | None = None) -> Path:
    """An environment whose site-packages holds pkg/a.py and pkg/sub/b.py (hard links of ``sources``)."""
    site = root / "lib" / "python3.11" / "site-packages"
    for rel in ("pkg/a.py", "pkg/sub/b.py"):
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if sources:
            os.link(sources[rel], path)
        else:
            path.write_text(f"X = {rel!r}\n")
    return site


def compile_(site: Path, rel: str) -> Path:
    source = site / rel
    target = source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"
    py_compile.compile(str(source), cfile=str(target))
    return target


def test_bytecode_written_in_one_environment_is_linked_into_the_next(tmp_path):
    store = tmp_path / "store"
    first = env_with(tmp_path / "one")
    pyc = compile_(first, "pkg/a.py")
    assert bytecode.harvest(tmp_path / "one", store) == 1
    assert bytecode.seeded(tmp_path / "one")
    second = env_with(tmp_path / "two", {r: first / r for r in ("pkg/a.py", "pkg/sub/b.py")})
    assert not bytecode.seeded(tmp_path / "two")
    assert bytecode.seed(tmp_path / "two", store) == 1
    linked = second / "pkg" / "__pycache__" / f"a.{TAG}.pyc"
    assert linked.exists() and os.path.samefile(linked, pyc)
    assert not (second / "pkg" / "sub" / "__pycache__").exists()  # nothing stored for b.py


def test_harvest_since_reads_only_caches_changed_after_it(tmp_path):
    store = tmp_path / "store"
    site = env_with(tmp_path / "env")
    compile_(site, "pkg/a.py")
    old = time.time() - 100
    os.utime(site / "pkg" / "__pycache__", (old, old))
    began = time.time() - 2
    compile_(site, "pkg/sub/b.py")  # written "during the suite"
    assert bytecode.harvest(tmp_path / "env", store, since=began) == 1  # only b's cache was read
    assert bytecode.harvest(tmp_path / "env", store) == 1  # a full harvest finds a as well


def test_a_killed_suite_makes_the_next_harvest_read_everything(tmp_path):
    store = tmp_path / "store"
    env = tmp_path / "env"
    site = env_with(env)
    assert bytecode.stamp(env) is None  # never harvested: the first harvest reads every cache
    bytecode.harvest(env, store)
    assert bytecode.stamp(env) is not None
    compile_(site, "pkg/a.py")  # written by a suite that is then killed: no harvest
    old = time.time() - 100
    os.utime(site / "pkg" / "__pycache__", (old, old))  # next run finds it valid and leaves it as is
    bytecode.forget(env)
    assert bytecode.stamp(env) is None
    assert bytecode.harvest(env, store, since=None) == 1

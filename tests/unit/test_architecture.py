"""The boundaries the design promises, read from the source: no import cycles anywhere in compat/,
host code never imports the ML stack, cell code never imports host code, and the exported adapter
is built from compat/cell alone."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).parents[2]
COMPAT = REPO / "compat"
ML = {"trl", "transformers", "torch", "datasets", "accelerate", "peft", "tokenizers"}


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (function-level imports count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
                   for n in ast.walk(block)}  # never executed, so never a cycle
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in COMPAT.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycles_in_compat():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_host_code_never_imports_the_ml_stack():
    for path in [*(COMPAT / "harness").rglob("*.py"), *(COMPAT / "cli").rglob("*.py"), *(COMPAT / "memory").rglob("*.py")]:
        tops = {m.split(".")[0] for m in _imports(path)}
        assert not tops & ML, f"{path.relative_to(REPO)} imports {sorted(tops & ML)}"


def test_cell_code_never_imports_host_code():
    host = ("compat.harness", "compat.cli", "compat.memory")
    for path in [*(COMPAT / "cell").rglob("*.py"), *(COMPAT / "trainers").rglob("*.py"), *(COMPAT / "contract").rglob("*.py"),
                 COMPAT / "probes.py", *(REPO / "tests" / "cell").rglob("*.py")]:
        bad = sorted(m for m in _imports(path) if m.startswith(host))
        assert not bad, f"{path.relative_to(REPO)} imports host code {bad}"


def test_the_exported_adapter_is_built_from_compat_cell_alone():
    from compat.cell.export import modules, render

    assert "legacy" not in modules()  # the old example script's formatter is a test fixture, not the adapter
    text = render(COMPAT, {"schema_version": 2, "facts": {}, "working": []})
    tree = ast.parse(text)
    own = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
           and ((getattr(n, "module", None) or "").startswith("compat") or any(a.name.startswith("compat") for a in n.names))]
    assert not own, "the export must not import the compat package"


def test_the_export_reads_its_sources_again_once_they_change(tmp_path):
    """A cell exports a dozen adapters from one parse of compat/cell; an edited source is parsed again."""
    import shutil

    from compat.cell.export import render

    package = tmp_path / "compat"
    shutil.copytree(COMPAT / "cell", package / "cell", ignore=shutil.ignore_patterns("__pycache__"))
    findings = {"schema_version": 2, "facts": {}, "working": []}
    first = render(package, findings)
    assert render(package, findings) == first == render(COMPAT, findings)
    assert render(package, {**findings, "working": ["x"]}).endswith("FINDINGS = json.loads('{\"facts\":{},\"schema_version\":2,\"working\":[\"x\"]}')\n")
    source = package / "cell" / "adapter.py"
    source.write_text(source.read_text(encoding="utf-8") + "\nEDITED_AFTER_THE_FIRST_EXPORT = 1\n", encoding="utf-8")
    assert "EDITED_AFTER_THE_FIRST_EXPORT = 1" in render(package, findings)


def test_a_new_trainer_needs_no_edit_to_the_probe_registry():
    """Probes every trainer records say EVERY, so a trainer the registry has never heard of gets them."""
    from compat import probes, trainers

    shared = probes.for_trainer("a-trainer-added-tomorrow")
    assert {p.key for p in shared} >= {"import_path", "keyword.processing_class", "keyword.tokenizer"}
    every = set(trainers.names())
    listing = [p.key for p in probes.PROBES if len(every) > 1 and set(p.trainers) >= every]
    assert not listing, f"{listing} list every trainer by name: say EVERY, or the next trainer misses them"

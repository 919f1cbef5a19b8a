"""The boundaries the design promises, read from the source: no import cycles anywhere in compat/,
host code never imports the ML stack, cell code never imports host code, and the exported adapter
is built from compat/cell alone."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).parents[2]
COMPAT = REPO / "compat"
ML = {"trl", "transformers", "torch", "datasets", "accelerate", "peft", "tokenizers"}


def _module(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = REPO) -> dict[str, int]:
    """Every module ``path`` imports -> the first line that does, anywhere in the file: function-level
    imports and imports under ``if TYPE_CHECKING:`` count too (a type-only arrow is still an arrow)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]  # `from pkg import module`
        for name in names:
            out.setdefault(name, node.lineno)
    return out


def _graph() -> dict[str, dict[str, int]]:
    """compat's own modules -> the compat modules each imports (-> line)."""
    modules = {_module(p): p for p in COMPAT.rglob("*.py")}
    return {name: {m: line for m, line in _imports(path).items() if m in modules and m != name}
            for name, path in modules.items()}


# Bottom to top. A module may import from its own layer or any layer below, never above. Within a layer
# (memory beside harness; harness.reports beside the rest of harness) only a circle is wrong.
LAYERS = (
    ("compat",),  # the package root: its version string
    ("compat.probes",),
    ("compat.contract",),
    ("compat.cell",),
    ("compat.trainers",),
    ("compat.memory", "compat.harness"),
    ("compat.cli", "compat.__main__"),
)
CELL_SIDE = ("compat.cell", "compat.trainers", "compat.probes", "compat.contract")
HOST_SIDE = ("compat.harness", "compat.cli", "compat.memory")

# Arrows that run up today, all on the cell side, which is frozen while the lead reruns the matrix under it.
# The lead removes them there and empties this set; any arrow not listed fails at once, and an entry whose
# arrow is gone fails too, so the set only ever shrinks.
KNOWN_UPWARD = frozenset({
    ("compat.cell.runs", "compat.trainers"),  # runs takes a TrainerSpec: the spec type belongs below cell
})


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _layer(module: str) -> int:
    """The index in LAYERS of the longest prefix naming ``module``."""
    best, found = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if _under(module, (prefix,)) and len(prefix) > best:
                best, found = len(prefix), i
    assert found >= 0, f"{module} sits in no layer: add it to LAYERS"
    return found


def _upward() -> dict[tuple[str, str], int]:
    return {(a, b): line for a, imported in _graph().items() for b, line in imported.items() if _layer(b) > _layer(a)}


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


def test_the_graph_sees_type_only_and_function_level_imports(tmp_path):
    """The graph tests are only as good as the parser: both hidden kinds of import must show up."""
    source = tmp_path / "compat" / "memory" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .estimate import Setup\n"
                      "def f():\n    from compat.harness import files\n", encoding="utf-8")
    found = _imports(source, tmp_path)
    assert found["compat.memory.estimate"] == 3 and found["compat.harness.files"] == 5


def test_every_module_sits_in_a_layer():
    for module in _graph():
        _layer(module)  # asserts


def test_no_import_runs_up_the_layers():
    upward = _upward()
    new = sorted(f"{a} -> {b} (line {line})" for (a, b), line in upward.items() if (a, b) not in KNOWN_UPWARD)
    assert not new, "imports that run up the layers (probes < contract < cell < trainers < memory, harness < cli): " \
                    + "; ".join(new)
    gone = sorted(f"{a} -> {b}" for a, b in KNOWN_UPWARD - upward.keys())
    assert not gone, f"no longer imported, remove from KNOWN_UPWARD: {gone}"


def test_host_code_never_imports_the_ml_stack():
    for path in [*(COMPAT / "harness").rglob("*.py"), *(COMPAT / "cli").rglob("*.py"), *(COMPAT / "memory").rglob("*.py")]:
        tops = {m.split(".")[0] for m in _imports(path)}
        assert not tops & ML, f"{path.relative_to(REPO)} imports {sorted(tops & ML)}"


def test_cell_code_never_imports_host_code():
    cell_side = [p for p in COMPAT.rglob("*.py") if _under(_module(p), CELL_SIDE)]
    assert any(_module(p).startswith("compat.contract") for p in cell_side)
    for path in [*cell_side, *(REPO / "tests" / "cell").rglob("*.py")]:
        bad = sorted(m for m in _imports(path) if _under(m, HOST_SIDE))
        assert not bad, f"{path.relative_to(REPO)} imports host code {bad}"


def test_the_contract_imports_nothing_from_the_cell():
    """Both sides share the contract, so it stands alone: it may not lean on cell code either."""
    for here, imported in _graph().items():
        if _under(here, ("compat.contract",)):
            bad = {(here, m) for m in imported if _under(m, ("compat.cell",))}
            assert bad <= KNOWN_UPWARD, f"{here} imports cell code {sorted(bad - KNOWN_UPWARD)}"


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

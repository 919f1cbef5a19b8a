"""`export-adapter`: the adapter and the cell modules it imports inlined into one file, findings embedded.

Built from compat/cell alone (the test fixtures there, such as the legacy
formatter, are not imported by the adapter and so stay out). The result
depends only on packaging and the ML libraries, so it can be dropped into a
training repository that does not install kto-compat. Cell code: the cell
suite exports an adapter with the cell's own findings and trains through it.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

CELL = Path(__file__).resolve().parent


def modules(cell_dir: Path = CELL, root: str = "adapter") -> list[str]:
    """``root`` and the compat.cell modules it imports, dependencies first (read from the imports)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        tree = ast.parse((cell_dir / f"{name}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("compat.cell."):
                visit(module.rsplit(".", 1)[1])
        order.append(name)

    visit(root)
    return order

HEADER = '''"""KTO compatibility adapter, exported by kto-compat (`kto-compat export-adapter`).

Generated file: do not edit. Regenerate it after `nox -s matrix` to pick up new
findings. Use: `from kto_compat import KTOConfig, KTOTrainer, format_dataset`
(or load_kto, make_kto_config, make_kto_trainer).
"""
'''


class ExportError(RuntimeError):
    pass


def _strip(source: str, keep_all: bool) -> tuple[list[str], set[str]]:
    """Source lines minus `from __future__`, intra-package imports and (unless kept) `__all__`."""
    tree = ast.parse(source)
    drop: set[int] = set()
    names: set[str] = set()
    for node in tree.body:
        is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        is_ours = isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "compat"
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if is_future or is_ours or ("__all__" in targets and not keep_all):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            continue
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        names.update(t for t in targets if t not in ("__all__", "FINDINGS"))
    lines = [ln for i, ln in enumerate(source.splitlines(), 1) if i not in drop]
    return lines, names


def render(package_dir: Path, findings: dict) -> str:
    """The single-file adapter; ``package_dir`` is the compat package (its cell/ is read)."""
    text = json.dumps(findings, sort_keys=True, separators=(",", ":"))
    cell_dir = package_dir / "cell"
    stamp = tuple((p.name, st.st_mtime_ns, st.st_size) for p in sorted(cell_dir.glob("*.py")) for st in [p.stat()])
    return _inlined(cell_dir, stamp) + f"# ---- measured findings (generated) ----\nFINDINGS = json.loads({text!r})\n"


@lru_cache(maxsize=4)
def _inlined(cell_dir: Path, _stamp: tuple) -> str:
    """Everything but the findings. Cached while the sources are unchanged (``_stamp``): a cell
    exports a dozen adapters, and parsing the sources was most of each export's time."""
    parts = [HEADER, "from __future__ import annotations", ""]
    seen: dict[str, str] = {}
    for name in modules(cell_dir):
        lines, defined = _strip((cell_dir / f"{name}.py").read_text(encoding="utf-8"), keep_all=name == "adapter")
        clash = sorted(n for n in defined if n in seen)
        if clash:
            raise ExportError(f"compat/cell/{name}.py redefines {clash} from compat/cell/{seen[clash[0]]}.py; "
                              "rename before exporting")
        seen.update(dict.fromkeys(defined, name))
        parts += [f"# ---- inlined from compat/cell/{name}.py ----", *lines, ""]
    return "\n".join(parts) + "\n"


def export(package_dir: Path, findings: dict) -> str:
    """The adapter text for ``findings`` (validated by the caller); never text that does not parse."""
    text = render(package_dir, findings)
    compile(text, "kto_compat.py", "exec")
    return text

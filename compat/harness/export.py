"""`export-adapter`: the adapter and its two helpers inlined into one file, findings embedded.

The result depends only on packaging and the ML libraries, so it can be
dropped into a training repository that does not install kto-compat.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

MODULES = ("kto_import.py", "formatting.py", "adapter.py")  # dependency order

HEADER = '''"""KTO compatibility adapter, exported by kto-compat (`python -m compat export-adapter`).

Generated file: do not edit. Regenerate it after `nox -s matrix` to pick up new
findings. Use: `from kto_compat import load_kto, make_kto_config, make_kto_trainer, format_dataset`.
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
    parts = [HEADER, "from __future__ import annotations", ""]
    seen: dict[str, str] = {}
    for name in MODULES:
        lines, defined = _strip((package_dir / name).read_text(), keep_all=name == "adapter.py")
        clash = sorted(n for n in defined if n in seen)
        if clash:
            raise ExportError(f"compat/{name} redefines {clash} from compat/{seen[clash[0]]}; rename before exporting")
        seen.update(dict.fromkeys(defined, name))
        parts += [f"# ---- inlined from compat/{name} ----", *lines, ""]
    text = json.dumps(findings, sort_keys=True, separators=(",", ":"))
    parts += ["# ---- measured findings (generated) ----", f"FINDINGS = json.loads({text!r})", ""]
    return "\n".join(parts)


def export(package_dir: Path, findings_path: Path, output: Path) -> None:
    try:
        findings = json.loads(findings_path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{findings_path}: cannot read findings: {exc}") from None
    text = render(package_dir, findings)
    compile(text, str(output), "exec")  # never write a file that does not parse
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text)
    tmp.replace(output)

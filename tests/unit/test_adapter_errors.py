"""The adapter's errors say what really happened, in its own words: no bare PackageNotFoundError when
trl is missing, no bare AttributeError when a trl has no KTO trainer, and an import failure names
the error that started the chain and where it was raised, not only the table's drift note.

Host-side: the test environment has no trl, which is the first case as a user meets it; the
exported adapter (`kto-compat export-adapter`) is checked the same way in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from compat.cell import adapter
from compat.cell.export import render

COMPAT = Path(adapter.__file__).resolve().parents[1]


def _absent(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return True
    return False


@pytest.mark.skipif(not _absent("trl"), reason="trl is installed in this environment: the missing-trl case needs one without it")
def test_missing_trl_is_one_adapter_error_naming_it() -> None:
    with pytest.raises(adapter.MissingPackageError, match=r"^trl is not installed in this Python") as info:
        adapter.installed_pair()
    assert isinstance(info.value, ImportError) and info.value.name == "trl"
    assert info.value.__cause__ is None and info.value.__suppress_context__  # not a PackageNotFoundError traceback


@pytest.mark.skipif(not _absent("trl"), reason="trl is installed in this environment: the missing-trl case needs one without it")
def test_the_exported_adapter_says_the_same_in_a_fresh_interpreter(tmp_path: Path) -> None:
    (tmp_path / "kto_compat.py").write_text(render(COMPAT, {"schema_version": 2, "facts": {}, "working": []}),
                                            encoding="utf-8")
    code = ("import kto_compat\ntry:\n    kto_compat.load_kto()\nexcept kto_compat.MissingPackageError as e:\n"
            "    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MissingPackageError trl is not installed in this Python"), out.stdout


def _raise_in(module_name: str, exc: BaseException) -> BaseException:
    """``exc`` raised by a function of a module called ``module_name`` and wrapped the way lazy modules do."""
    module = types.ModuleType(module_name)
    exec("def generate_from_arrow_type():\n    raise EXC\n", module.__dict__ | {"EXC": exc}, module.__dict__)
    module.__dict__["EXC"] = exc
    try:
        try:
            module.generate_from_arrow_type()
        except AttributeError as inner:
            raise RuntimeError("Failed to import trl.trainer.kto_trainer because of the following error "
                               "(look up to see its traceback):\n" + str(inner)) from inner
    except RuntimeError as outer:
        return outer
    raise AssertionError("unreachable")


def test_drift_advice_leads_with_the_error_that_really_happened() -> None:
    exc = _raise_in("datasets.features.features", AttributeError("module 'pyarrow' has no attribute 'PyExtensionType'"))
    drift = {"cause": "trl.trainer.utils needs rich, which no declared requirement brings any more", "package": "rich"}
    text = adapter.drift_advice(("0.11.4", "4.45.2"), drift, exc)
    first = text.splitlines()[0]
    assert "AttributeError: module 'pyarrow' has no attribute 'PyExtensionType'" in first
    assert "raised in datasets.features.features.generate_from_arrow_type" in first
    assert "does not name rich" in text  # the table's note is not passed off as this failure's cause
    assert "kto-compat check --run" in text


def test_drift_advice_does_not_doubt_a_failure_that_names_the_measured_package() -> None:
    exc = _raise_in("trl.trainer.utils", AttributeError("module 'rich' has no attribute 'console'"))
    text = adapter.drift_advice(("0.11.4", "4.45.2"), {"cause": "needs rich", "package": "rich"}, exc)
    assert "does not name" not in text and "raised in trl.trainer.utils.generate_from_arrow_type" in text


def test_a_trl_without_kto_is_one_adapter_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module where the findings say KTO lives, holding no KTO classes (a trl that dropped them).
    monkeypatch.setitem(sys.modules, "trl", types.ModuleType("trl"))
    monkeypatch.setattr(adapter, "installed_pair", lambda: ("9.9.9", "4.46.3"))
    monkeypatch.setattr(adapter, "lookup", lambda fact, *a, **k: "trl" if fact == "import_path" else None)
    with pytest.raises(adapter.MissingPackageError, match=r"^trl has no KTOConfig/KTOTrainer in trl 9\.9\.9"):
        adapter._import_kto()

"""The real uv binary, offline, against packages and indexes made here: its wording is what
compat.harness.envs classifies, so a uv release that changes it must fail this test first.

Needs the uv pinned in pyproject (the `matrix`/`test` extras); no network: a local HTTP server
answers 404 for every page, a closed loopback port refuses connections, and tiny wheels written
here make an unsatisfiable pair for `--no-index --find-links`.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest

from compat.harness.envs import Step, fault, refused, uv_bin


def _wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A minimal valid pure-Python wheel: METADATA, WHEEL and RECORD."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: kto-compat-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)


def _compile(tmp_path: Path, requirements: str, *args: str) -> Step:
    req = tmp_path / "requirements.in"
    req.write_text(requirements)
    proc = subprocess.run([uv_bin(), "pip", "compile", "--quiet", "--no-header", "--no-cache", "--color", "never",
                           str(req), "-o", str(tmp_path / "lock.txt"), *args],
                          capture_output=True, text=True, timeout=120)
    return Step(proc.returncode == 0, 0.0, proc.stderr + proc.stdout, proc.returncode)


@pytest.mark.needs("uv")
def test_an_index_answering_404_is_an_index_fault_not_a_verdict(tmp_path, not_found_index):
    step = _compile(tmp_path, "trl==1.16.0\n", "--index-url", not_found_index)
    assert not step.ok and "was not found in the package registry" in step.output
    assert fault(step, {"trl": "1.16.0"}, stopping=False) == "index"


@pytest.mark.needs("uv")
def test_a_refused_connection_is_a_network_fault(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    step = _compile(tmp_path, "trl==1.16.0\n", "--index-url", f"http://127.0.0.1:{port}/simple")
    assert not step.ok
    assert fault(step, {"trl": "1.16.0"}, stopping=False) == "network"


@pytest.mark.needs("uv")
def test_a_real_conflict_is_the_resolver_refusing(tmp_path):
    links = tmp_path / "wheels"
    links.mkdir()
    _wheel(links, "alpha", "1.0", ("beta<1",))
    _wheel(links, "beta", "1.0")
    step = _compile(tmp_path, "alpha==1.0\nbeta==1.0\n", "--no-index", "--find-links", str(links))
    assert not step.ok and refused(step), step.output
    assert fault(step, {"alpha": "1.0", "beta": "1.0"}, stopping=False) is None
    assert "depend on beta<1" in step.output  # uv names the requirement that conflicts


@pytest.mark.needs("uv")
def test_a_pinned_release_the_index_lacks_is_an_index_fault(tmp_path):
    links = tmp_path / "wheels"
    links.mkdir()
    _wheel(links, "alpha", "1.0")
    step = _compile(tmp_path, "alpha==2.0\n", "--no-index", "--find-links", str(links))
    assert refused(step), step.output
    # The planner saw alpha 2.0 on the index; the resolver now says it is not there: the index's fault.
    assert fault(step, {"alpha": "2.0"}, stopping=False) == "index"
    assert fault(step, {}, stopping=False) is None  # a release nobody listed: the pair's own answer


def test_stopping_or_a_signal_is_an_interrupt():
    assert fault(Step(False, 1.0, "error: No solution found when resolving dependencies", 1), {}, stopping=True) == "interrupt"
    assert fault(Step(False, 1.0, "", -2), {}, stopping=False) == "interrupt"


@pytest.mark.needs("uv")
def test_an_unusable_uv_cache_is_blamed_on_the_cache_not_on_settings_python(tmp_path, monkeypatch):
    """The real uv with UV_CACHE_DIR where no directory can be made: the line names uv's cache."""
    from compat.harness.config import Settings
    from compat.harness.envs import EnvError, Envs

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("UV_CACHE_DIR", str(blocker / "cache"))  # under a regular file: never creatable
    monkeypatch.delenv("COMPAT_UV", raising=False)
    with pytest.raises(EnvError) as caught:
        Envs(tmp_path / "envs", Settings()).check_python()
    message = str(caught.value)
    assert "settings.python" not in message and "uv's cache cannot be used" in message and "cache" in message
    assert fault(Step(False, 0.0, "error: Failed to initialize cache at `/x`", 2), {}, False) == "cache"

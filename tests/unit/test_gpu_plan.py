"""The GPU check's host logic: which pins travel to the offline machine, and a plan over budget refused.
The whole check runs end to end on CPU in tests/integration/test_gpu_check.py."""

from __future__ import annotations

import json
import sys

import pytest

from compat.contract import CompatError
from compat.harness import gpu
from compat.harness.config import Settings

IMAGE = json.dumps([{"name": "torch", "version": "2.11.0"}, {"name": "Transformers", "version": "5.17.0"},
                    {"name": "numpy", "version": "2.5.2"}, {"name": "huggingface_hub", "version": "1.33.0"}])


def test_the_image_listing_is_read_by_canonical_name():
    assert gpu.image_of(IMAGE, "image.json") == {"torch": "2.11.0", "transformers": "5.17.0", "numpy": "2.5.2",
                                                 "huggingface-hub": "1.33.0"}
    with pytest.raises(CompatError, match="image.json: not a `pip list --format=json` answer"):
        gpu.image_of('{"name": "x"}', "image.json")


def test_only_pins_the_image_lacks_at_that_version_travel_never_its_cuda_stack():
    pins = gpu.pins_of("# lock\ntorch==2.11.0\ntriton==3.6.0\nnvidia-cublas==13.1.1.3\nnumpy==2.5.2\n"
                       "transformers==4.46.3\nhuggingface-hub==0.36.2\ntrl==0.12.2\n")
    assert gpu.carried(pins, gpu.image_of(IMAGE, "i")) == {"huggingface-hub": "0.36.2", "transformers": "4.46.3",
                                                           "trl": "0.12.2"}


def test_a_wheel_is_found_however_its_file_spells_the_name(tmp_path):
    (tmp_path / "huggingface_hub-0.36.2-py3-none-any.whl").write_bytes(b"")
    assert gpu.wheel_of(tmp_path, "huggingface-hub", "0.36.2").name.startswith("huggingface_hub-0.36.2")
    assert gpu.wheel_of(tmp_path, "huggingface-hub", "0.36.3") is None


def test_a_plan_over_the_budget_is_refused_naming_the_largest_wheels(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "resolve", lambda pair, settings, target, work: {"trl": pair[0], "numpy": "2.5.3"})

    def download(pins, target, wheels):
        wheels.mkdir(parents=True, exist_ok=True)
        for name, version in pins.items():
            (wheels / f"{name}-{version}-py3-none-any.whl").write_bytes(b"x" * (3 * 2**20 if name == "numpy" else 10))

    monkeypatch.setattr(gpu, "download", download)
    target = gpu.Target("3.12", "x86_64-manylinux_2_28", "2.11.0", {})
    with pytest.raises(CompatError, match=r"3\.0 MiB, over the 2 MiB that can travel: largest numpy-2\.5\.3"):
        gpu.prepare([("1.16.0", "5.24.0")], Settings(), target, tmp_path, {}, budget=2 * 2**20)
    plan = gpu.prepare([("1.16.0", "5.24.0")], Settings(), target, tmp_path, {"sizes": []}, budget=4 * 2**20)
    assert plan["pairs"][0]["wheels"] == ["numpy-2.5.3-py3-none-any.whl", "trl-1.16.0-py3-none-any.whl"]
    assert json.loads((tmp_path / "plan.json").read_text()) == plan


def test_an_image_version_the_pair_cannot_use_resolves_freely_and_travels(tmp_path, monkeypatch):
    """The image's versions are constraints until the resolver names one in a conflict."""
    script = tmp_path / "uv"
    script.write_text(f"""#!{sys.executable}
import sys
from pathlib import Path
args = sys.argv[1:]
cons = Path(args[args.index("--constraint") + 1]).read_text()
if "tokenizers==0.23.2" in cons:
    print("error: Because you require tokenizers==0.23.2 and transformers==4.46.3 depends on tokenizers>=0.20,<0.21, "
          "we can conclude that your requirements are unsatisfiable.", file=sys.stderr)
    sys.exit(1)
Path(args[args.index("-o") + 1]).write_text("trl==0.12.2\\ntransformers==4.46.3\\ntokenizers==0.20.3\\nnumpy==2.5.2\\n" + cons)
""")
    script.chmod(0o755)
    monkeypatch.setenv("COMPAT_UV", str(script))
    image = {"tokenizers": "0.23.2", "numpy": "2.5.2", "torch": "2.11.0"}
    pins = gpu.resolve(("0.12.2", "4.46.3"), Settings(), gpu.Target("3.12", "x86_64-manylinux_2_28", "2.11.0", image),
                       tmp_path / "work")
    assert (tmp_path / "work" / "constraints.txt").read_text() == "numpy==2.5.2\n"  # tokenizers was named: dropped
    assert gpu.carried(pins, image) == {"tokenizers": "0.20.3", "transformers": "4.46.3", "trl": "0.12.2"}

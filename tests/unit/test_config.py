from __future__ import annotations

from pathlib import Path

import pytest

from compat.harness import config as cfg

GOOD = """
[settings]
python = "3.11"
[torch]
version = "2.13.0"
[profiles.default]
[[profiles.default.grid]]
trl = ["0.12.0", "0.11.*"]
transformers = "latest"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "matrix.toml"
    p.write_text(text)
    return p


def test_loads_profiles_and_settings(tmp_path):
    c = cfg.load(write(tmp_path, GOOD))
    assert c.settings.torch == "2.13.0"
    grid = c.profile("default").grids[0]
    assert str(grid.trl[0].exact) == "0.12.0"
    assert str(grid.trl[1].spec) == "==0.11.*"
    assert grid.transformers[0].text == "latest"


def test_repo_matrix_parses():
    c = cfg.load(Path(__file__).parents[2] / "matrix.toml")
    assert {"default", "full"} <= set(c.profiles)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[settings\npython=1", "TOML syntax error"),
        (GOOD + "\n[bogus]\n", "unknown key 'bogus'"),
        (GOOD.replace('"0.11.*"', '">>0.11"'), "invalid version specifier '>>0.11'"),
        (GOOD.replace('"0.12.0"', '"0.12.0.dev-x"'), "invalid version"),
        (GOOD.replace('transformers = "latest"', "transformers = []"), "axis is empty"),
        (GOOD.replace('python = "3.11"', 'pyhton = "3.11"'), "unknown key 'pyhton'"),
        (GOOD.replace('"0.11.*"', '{spec = "0.11.*", pick = "newest"}'), "unknown pick 'newest'"),
        (GOOD.replace('transformers = "latest"', ""), "missing axis 'transformers'"),
        (GOOD.replace('python = "3.11"', "python = 3.10"), "settings.python: expected a quoted string"),
        (GOOD.replace('python = "3.11"', 'python = "3.11"\ncell_timeout = 0'), "settings.cell_timeout: 0 is below the minimum"),
        (GOOD.replace('python = "3.11"', 'python = "3.11"\ncell_timeout = "soon"'), "settings.cell_timeout: expected a number"),
        (GOOD.replace('python = "3.11"', 'python = "3.11"\ncell_requirements = "pytest"'),
         "settings.cell_requirements: expected a list of non-empty strings"),
        (GOOD.replace('"0.12.0"', '""'), "empty version"),
        (GOOD.replace('python = "3.11"', 'python = "3.11"\ntrainers = ["ppo"]'), "unknown trainer 'ppo'"),
    ],
)
def test_bad_input_names_file_and_field(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_profile_lists_known(tmp_path):
    c = cfg.load(write(tmp_path, GOOD))
    with pytest.raises(cfg.ConfigError, match="unknown profile 'nope'; defined: default"):
        c.profile("nope")


def test_host_code_takes_the_default_trainer_from_the_contract():
    """The contract defines the default trainer once (cell ids without a suffix); host code spells no
    trainer name of its own: a literal would drift from it, and from the specs."""
    import ast

    from compat import trainers
    from compat.contract import DEFAULT_TRAINER

    assert DEFAULT_TRAINER in trainers.names() and cfg.Settings().trainers == (DEFAULT_TRAINER,)
    root = Path(cfg.__file__).parents[1]
    spelled = sorted(f"{p.relative_to(root)}:{node.lineno}" for part in ("harness", "cli", "memory")
                     for p in (root / part).rglob("*.py")
                     for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                     if isinstance(node, ast.Constant) and node.value in trainers.names())
    assert not spelled, spelled


def test_report_titles_come_from_the_trainer_specs():
    from packaging.version import Version

    from compat.contract import CellResult
    from compat.harness import specs

    def cell(trainer: str) -> CellResult:
        return CellResult(Version("1.0"), Version("4.0"), "latest", "compatible", trainer=trainer)

    assert specs.report_title([]) == "KTOTrainer compatibility"
    assert specs.report_title([cell("dpo"), cell("kto")]) == "KTOTrainer and DPOTrainer compatibility"
    assert specs.report_title([cell("gone")]) == "gone compatibility"  # a trainer no spec declares reads as itself

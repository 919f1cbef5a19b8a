"""The README's figures are the code's: counted here, so an edit to either that breaks one fails."""

from __future__ import annotations

import json
import re
from pathlib import Path

from compat.cell.cases import CASES
from compat.cell.templates import TEMPLATES

REPO = Path(__file__).parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_first_screen_shows_the_picture_and_the_check_command():
    first = "\n".join(README.splitlines()[:30])
    assert "docs/compat/compat.svg" in first and (REPO / "docs" / "compat" / "compat.svg").exists()
    assert "kto-compat check" in first


def test_case_and_template_counts():
    m = re.search(r"(\d+) boundary-case conversations x (\d+) chat templates", README)
    assert m and (int(m[1]), int(m[2])) == (len(CASES), len(TEMPLATES))


def test_the_schema_links_resolve():
    for link in re.findall(r"\]\(((?:compat|docs)/[^)#]+)\)", README):
        assert (REPO / link).exists(), link


def test_measured_on_matches_the_findings():
    findings = json.loads((REPO / "compat" / "findings.json").read_text())
    torch, python = findings["generated_from"]["torch"], findings["generated_from"]["python"]
    m = re.search(r"today: torch (\S+), Python (\d+\.\d+)", README)
    assert m and m[1] == torch and python.startswith(m[2])

"""Every example project loads and validates, and says in its header how to run it."""

from __future__ import annotations

import pytest

from tunewiz.examples import EXAMPLES_DIR
from tunewiz.formats import read_pairs
from tunewiz.project import Project

EXAMPLES = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/tunewiz.toml"))


def test_there_are_at_least_two_examples():
    assert {"velmora-handbook", "lighthouse-guide"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_and_names_its_command(name):
    project = Project.load(EXAMPLES_DIR / name)
    header = (EXAMPLES_DIR / name / "tunewiz.toml").read_text().split("schema_version")[0]
    assert "tunewiz " in header, "the header comment gives the command that runs the example"
    for document in project.config.generator.documents:
        assert project.path(document).is_file(), document


def test_handbook_has_50_to_100_clean_pairs():
    result = read_pairs(EXAMPLES_DIR / "velmora-handbook" / "handbook.csv")
    assert result.problems == []
    assert 50 <= len(result.pairs) <= 100
    assert len({p.question for p in result.pairs}) == len(result.pairs)

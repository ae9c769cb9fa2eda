"""tunewiz.newproject: the one way a project is made (tunewiz new and the welcome screen use it)."""

from __future__ import annotations

import pytest

from tunewiz.dataset import PairStore
from tunewiz.errors import TunewizError
from tunewiz.newproject import new_project, project_values
from tunewiz.project import Project
from tunewiz.tui.screens.welcome import create_new_project


def test_a_new_project_gets_its_settings_and_first_pairs(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("question,answer\nWhat is 2+2?,4\nWho wrote it?,Ada\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("A document.", encoding="utf-8")
    values = project_values(name=" facts ", kind="facts", documents=[str(tmp_path / "a.txt")])
    made = new_project(tmp_path / "proj", values, pairs)
    assert made.project.config.project.name == "facts" and made.project.config.dataset.kind == "facts"
    assert made.project.config.generator.documents == [str((tmp_path / "a.txt").resolve())]
    assert made.imported.added == 2 and len(list(PairStore(made.project.pairs_path))) == 2


def test_a_bad_file_leaves_nothing_and_an_existing_folder_keeps_its_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(TunewizError, match="empty.csv.*no project was created"):
        new_project(tmp_path / "fresh", {}, empty)
    assert not (tmp_path / "fresh").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(TunewizError, match="no project was created"):
        new_project(mine, {"hyperparameters.lora_r": 0})
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    new_project(tmp_path / "again", {})
    with pytest.raises(TunewizError, match="a project already exists"):
        new_project(tmp_path / "again", {})


def test_the_welcome_screen_makes_the_same_project_as_tunewiz_new(tmp_path):
    root, report = create_new_project(str(tmp_path / "w"), "wiz", "", "topic", "lighthouses")
    assert report == ""
    made = new_project(tmp_path / "c", project_values(name="wiz", topic="lighthouses"))
    wizard = (root / "tunewiz.toml").read_text(encoding="utf-8").splitlines()
    cli = (made.project.root / "tunewiz.toml").read_text(encoding="utf-8").splitlines()
    assert [line for line in wizard if not line.startswith("created")] == \
        [line for line in cli if not line.startswith("created")]


def test_what_is_typed_without_saying_what_it_is_is_used_not_dropped(tmp_path, monkeypatch):
    # The welcome screen's source stays "Decide later" unless changed: what the user typed still counts.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "facts.csv").write_text("question,answer\nWhat is 2+2?,4\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "guide.md").write_text("# Guide\n", encoding="utf-8")
    root, report = create_new_project("a", "", "", "later", "facts.csv")
    assert "added 1 pair" in report and len(list(PairStore(root / "data" / "pairs.jsonl"))) == 1
    root, _ = create_new_project("b", "", "", "later", "'docs'")  # as a terminal's drag and drop writes it
    assert Project.load(root).config.generator.documents == [str(tmp_path / "docs")]
    root, _ = create_new_project("c", "", "", "later", "guide.md")
    assert Project.load(root).config.generator.documents == [str(tmp_path / "guide.md")]
    root, _ = create_new_project("d", "", "", "later", "lighthouses of Brittany")
    assert Project.load(root).config.generator.topic == "lighthouses of Brittany"
    with pytest.raises(TunewizError, match="fatcs.csv: no such file or folder"):
        create_new_project("e", "", "", "later", "fatcs.csv")
    assert not (tmp_path / "e").exists()

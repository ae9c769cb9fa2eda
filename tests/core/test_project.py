"""The project file: schema validation (one bad file per error), atomic save, the write lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunewiz.project import (PROJECT_FILE, Project, ProjectError, ProjectLockedError, create_project,
                             parse_value)

BAD = Path(__file__).parent / "bad_projects"

EXPECTED_ERRORS = {
    "unknown_key.toml": "unknown key 'hyperparameters.learning_rat' (did you mean 'learning_rate'?)",
    "unknown_section.toml": "unknown section [hyperparams] (did you mean 'hyperparameters'?)",
    "wrong_type.toml": "hyperparameters.lora_r must be an integer, got 'sixteen'",
    "out_of_range.toml": "dataset.validation_fraction must be between 0 and 0.5, got 0.9",
    "bad_choice.toml": "template.name must be one of auto, chatml, llama2, alpaca; got 'vicuna'",
    "not_toml.toml": "not valid TOML",
    "no_version.toml": "missing key 'schema_version'",
    "future_version.toml": "schema_version 99 is newer than this tunewiz understands",
    "section_not_table.toml": "[hardware] must be a table",
    "bool_as_int.toml": "hyperparameters.lora_r must be an integer, got True",
    "list_of_ints.toml": "hyperparameters.target_modules must be a list of strings",
    "not_utf8.toml": "not UTF-8 text",
}


def test_every_bad_fixture_has_an_expectation():
    assert sorted(p.name for p in BAD.glob("*.toml")) == sorted(EXPECTED_ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_bad_project_file_names_file_and_key(tmp_path, name):
    shutil.copy(BAD / name, tmp_path / PROJECT_FILE)
    with pytest.raises(ProjectError) as info:
        Project.load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / PROJECT_FILE) in message
    assert EXPECTED_ERRORS[name] in message


def test_missing_project_says_how_to_create_one(tmp_path):
    with pytest.raises(ProjectError, match="tunewiz new"):
        Project.load(tmp_path)


def test_round_trip_keeps_every_value(tmp_path):
    project = create_project(tmp_path / "p", {"base_model.model": "/models/llama.gguf",
                                              "generator.documents": ["a.md", "b.pdf"]})
    project.set("hyperparameters.learning_rate", 1e-3)
    project.set("hyperparameters.lora_r", 8)
    project.set("hardware.allow_over_memory", True)
    project.save()
    again = Project.load(tmp_path / "p")
    assert again.config == project.config
    assert again.config.generator.documents == ["a.md", "b.pdf"]
    assert again.get("hyperparameters.learning_rate") == 1e-3


def test_integers_are_accepted_where_numbers_are_due(tmp_path):
    (tmp_path / PROJECT_FILE).write_text("schema_version = 1\n[hyperparameters]\nepochs = 2\n")
    assert Project.load(tmp_path).config.hyperparameters.epochs == 2.0


def test_set_refuses_bad_values_and_leaves_config_unchanged(project):
    with pytest.raises(ValueError, match="hyperparameters.lora_r must be between 1 and 1024"):
        project.set("hyperparameters.lora_r", 0)
    with pytest.raises(ValueError, match="did you mean 'lora_r'"):
        project.set("hyperparameters.lora_rank", 4)
    assert project.config.hyperparameters.lora_r == 16


def test_parse_value_reads_what_people_type():
    assert parse_value("hyperparameters", "learning_rate", "3e-4") == 3e-4
    assert parse_value("hyperparameters", "packing", "no") is False
    assert parse_value("hyperparameters", "target_modules", "q_proj, v_proj") == ["q_proj", "v_proj"]
    # A list as the TOML file writes it (it was one path named '["docs", "notes.md"]').
    assert parse_value("generator", "documents", '["docs", "notes.md"]') == ["docs", "notes.md"]
    with pytest.raises(ValueError, match="must be a list of strings"):
        parse_value("generator", "documents", '["docs", 3]')
    with pytest.raises(ValueError, match="must be an integer, got 'x'"):
        parse_value("hyperparameters", "lora_r", "x")


def test_a_bare_key_is_answered_with_its_section():
    from tunewiz.project import check_dotted_key

    with pytest.raises(ValueError, match="did you mean 'hyperparameters.lora_r'"):
        check_dotted_key("lora_r")
    check_dotted_key("hyperparameters.lora_r")
    check_dotted_key("generator")  # a whole section


def test_create_refuses_an_existing_project(project):
    before = project.file.read_bytes()
    with pytest.raises(ProjectError, match="already exists"):
        create_project(project.root)
    assert project.file.read_bytes() == before


def test_save_is_atomic_a_failed_write_keeps_the_old_file(project, monkeypatch):
    before = project.file.read_bytes()
    project.set("hyperparameters.lora_r", 4)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)  # the fsync of the new file (tests/core/test_faults.py fills a disk)
    from tunewiz.errors import DiskError

    with pytest.raises(DiskError, match="the disk is full.*tunewiz.toml is unchanged"):
        project.save()
    monkeypatch.undo()
    assert project.file.read_bytes() == before
    assert [p.name for p in project.root.iterdir() if p.name.endswith(".tmp")] == []


def test_a_second_process_is_refused_the_write_lock(project):
    project.lock("test holder")
    code = ("import sys\nfrom tunewiz.project import Project, ProjectLockedError\n"
            f"p = Project.load({str(project.root)!r})\n"
            "try:\n    p.lock()\nexcept ProjectLockedError as e:\n    print(e); sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert f"pid {os.getpid()} (test holder)" in done.stdout
    project.unlock()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lock_dies_with_its_process(project):
    holder = subprocess.Popen([sys.executable, "-c",
                               f"from tunewiz.project import Project; p = Project.load({str(project.root)!r}); "
                               "p.lock(); print('locked', flush=True); import time; time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ProjectLockedError):
            Project.load(project.root).lock()
    finally:
        holder.kill()
        holder.wait()
    Project.load(project.root).lock().unlock()


def test_tunewiz_inside_a_project_folder_opens_that_project(project, tmp_path, monkeypatch):
    import tunewiz.tui.app as tui_app
    from tunewiz.cli import main
    from tunewiz.project import find_project_root

    (project.root / "data" / "deeper").mkdir()
    assert find_project_root(project.root / "data" / "deeper") == project.root.resolve()
    assert find_project_root(tmp_path) is None
    opened = []
    monkeypatch.setattr(tui_app, "run_app", lambda folder: opened.append(folder) or 0)
    monkeypatch.chdir(project.root / "data" / "deeper")
    assert main([]) == 0
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert opened == [str(project.root.resolve()), None]


def test_the_wizard_takes_its_project_with_p_as_every_command_does(project, monkeypatch, capsys):
    import tunewiz.tui.app as tui_app
    from tunewiz.cli import main

    opened = []
    monkeypatch.setattr(tui_app, "run_app", lambda folder: opened.append(folder) or 0)
    folder = str(project.root)
    assert main(["open", "-p", folder]) == 0 and main(["-p", folder]) == 0 and main(["--project", folder]) == 0
    assert main(["open", folder]) == 0
    assert opened == [folder] * 4
    assert main(["open", folder, "-p", folder + "-other"]) == 2
    assert "two project folders named" in capsys.readouterr().err

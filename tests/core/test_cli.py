"""The `tunewiz` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from tunewiz.cli import COMMAND_MODULES, build_parser
from tunewiz.project import Project


def tunewiz(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunewiz", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_help_of_every_subcommand():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # the registered subcommands
    assert {"new", "status", "config", "import", "export-data", "pairs"} <= set(commands)
    for name in commands:
        done = tunewiz(name, "--help")
        assert done.returncode == 0, (name, done.stderr)
        assert "usage: tunewiz" in done.stdout


def test_new_import_status_and_export(tmp_path):
    csv = tmp_path / "qa.csv"
    csv.write_text("Question,Answer\nWhat is Zorblax?,A made-up planet.\nWho runs Acme?,Ada.\nbroken,\n")
    done = tunewiz("new", str(tmp_path / "p"), "--name", "demo", "--topic", "space", "--import", str(csv), "-y")
    assert done.returncode == 0, done.stderr
    assert "added 2 pairs, skipped 1 bad row" in done.stdout
    assert "line 4: the answer is empty" in done.stdout
    project = Project.load(tmp_path / "p")
    assert project.config.project.name == "demo"
    assert project.config.generator.topic == "space"

    done = tunewiz("status", str(tmp_path / "p"))
    assert done.returncode == 0, done.stderr
    assert "2 pairs" in done.stdout and "0 accepted, 2 pending" in done.stdout

    done = tunewiz("pairs", "-p", str(tmp_path / "p"), "--accept")
    assert "Accepted 2 pairs." in done.stdout
    out = tmp_path / "out.jsonl"
    done = tunewiz("export-data", "-p", str(tmp_path / "p"), str(out), "--format", "openai")
    assert done.returncode == 0, done.stderr
    assert out.read_text().count('"role": "assistant"') == 2


def test_a_project_named_without_p_is_answered_with_the_command_that_works(project):
    done = tunewiz("pairs", str(project.root), "--status", "accepted")
    assert done.returncode == 2
    assert f"{project.root} is a project folder: name it with -p, as in tunewiz pairs -p {project.root} " \
           "--status accepted" in done.stderr
    done = tunewiz("pairs", "no-such-folder")
    assert done.returncode == 2 and "unrecognized arguments: no-such-folder" in done.stderr
    assert "is a project folder" not in done.stderr


def test_new_refuses_an_existing_project_and_changes_nothing(project):
    before = project.file.read_bytes()
    done = tunewiz("new", str(project.root), "-y")
    assert done.returncode == 2
    assert "a project already exists here; nothing was changed" in done.stderr
    assert project.file.read_bytes() == before


def test_new_with_a_bad_import_leaves_nothing_behind(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    done = tunewiz("new", str(tmp_path / "p"), "--import", str(tmp_path / "empty.csv"), "-y")
    assert done.returncode == 2
    assert "empty.csv: the file is empty; no project was created" in done.stderr
    assert not (tmp_path / "p").exists()


def test_new_names_documents_that_are_not_there_and_says_generate_comes_next(tmp_path):
    done = tunewiz("new", str(tmp_path / "p"), "--documents", str(tmp_path / "nowhere.pdf"), "-y")
    assert done.returncode == 2 and "documents: no such file or folder" in done.stderr
    assert not (tmp_path / "p").exists()
    done = tunewiz("new", "t", "--topic", "volcanoes", "-y", cwd=tmp_path)
    assert done.returncode == 0 and "Next: tunewiz generate -p t (an LLM writes the pairs)" in done.stdout


def test_config_get_set_and_bad_values(project):
    root = str(project.root)
    assert tunewiz("config", "-p", root, "hyperparameters.lora_r", "8").returncode == 0
    assert tunewiz("config", "-p", root, "hyperparameters.lora_r").stdout.strip() == "8"
    assert Project.load(project.root).config.hyperparameters.preset == "auto"  # the value is kept; the rest resolved
    assert tunewiz("presets", "-p", root, "balanced", "--apply").returncode == 0
    edited = tunewiz("config", "-p", root, "hyperparameters.lora_r", "8")
    assert "hyperparameters.preset = 'custom'" in edited.stdout  # said, not silent
    assert Project.load(project.root).config.hyperparameters.preset == "custom"  # a named preset edited
    done = tunewiz("config", "-p", root, "hyperparameters.learning_rate", "fast")
    assert done.returncode == 2
    assert "hyperparameters.learning_rate must be a number, got 'fast'" in done.stderr
    done = tunewiz("config", "-p", root, "hardware.device", "tpu")
    assert "hardware.device must be one of auto, cpu, cuda, mps" in done.stderr
    section = tunewiz("config", "-p", root, "hyperparameters")  # a whole section, as the file writes it
    assert section.returncode == 0 and section.stdout.startswith("[hyperparameters]") and "lora_r = 8" in section.stdout
    done = tunewiz("config", "-p", root, "hyperparameters", "8")
    assert done.returncode == 2 and "hyperparameters is a section: set one of its keys" in done.stderr


def test_bad_project_file_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "tunewiz.toml").write_text("schema_version = 1\n[hyperparameters]\nlora_r = -1\n")
    done = tunewiz("status", str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "tunewiz.toml: hyperparameters.lora_r must be between 1 and 1024, got -1" in done.stderr


def test_import_is_refused_while_another_process_holds_the_project(project, tmp_path):
    (tmp_path / "qa.csv").write_text("Question,Answer\nq,a\n")
    project.lock("tunewiz tui")
    done = tunewiz("import", "-p", str(project.root), str(tmp_path / "qa.csv"))
    assert done.returncode == 2
    assert f"open for writing by pid {os.getpid()} (tunewiz tui)" in done.stderr
    project.unlock()


def test_every_command_module_exists():
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name)


def test_status_lists_finished_exports_not_ones_being_written(project):
    from tunewiz.status import project_status

    (project.exports_dir / "mymodel").mkdir(parents=True)
    (project.exports_dir / ".other.partial-123").mkdir()
    export = {s.key: s for s in project_status(project)}["export"]
    assert export.summary == "exports: mymodel"


def test_pairs_that_are_all_rejected_leave_nothing_to_train_and_status_says_so(project):
    # Seen in the wizard: generation kept 5 pairs, all rejected by the checks; Data said done, Train ready.
    from tunewiz.dataset import Pair, PairStore
    from tunewiz.status import project_status

    PairStore(project.pairs_path).add([Pair(f"Q{i}?", f"A{i}.", status="rejected", reason="unsupported")
                                       for i in range(5)])
    steps = {s.key: s for s in project_status(project)}
    assert steps["data"].state == "todo" and "5 pairs, none to train on: all rejected" in steps["data"].summary
    assert steps["format"].state == "todo" and steps["train"].state == "todo"
    PairStore(project.pairs_path).add([Pair("Q9?", "A9.")])
    steps = {s.key: s for s in project_status(project)}
    assert (steps["data"].state, steps["train"].state) == ("done", "ready") and "6 pairs (" in steps["data"].summary


def test_status_names_gpus_only_when_the_project_asks_for_several(project):
    # "gpus 1" on a laptop without a GPU read as if one had been found.
    from tunewiz.status import project_status

    hardware = {s.key: s for s in project_status(project)}["hardware"]
    assert hardware.summary == "device auto, precision auto"
    project.config.hardware.gpus, project.config.hardware.quantization = 4, "nf4"
    hardware = {s.key: s for s in project_status(project)}["hardware"]
    assert hardware.summary == "device auto, precision auto, 4 GPUs, quantization nf4"


def test_commands_an_error_names_carry_the_project_given_from_outside_it(project):
    # Written for a shell inside the project; run from its parent with -p, they would not find it.
    outside = tunewiz("export", "-p", project.root.name, cwd=project.root.parent)
    assert outside.returncode == 2 and f"`tunewiz train -p {project.root.name}`" in outside.stderr
    inside = tunewiz("export", cwd=project.root)
    assert inside.returncode == 2 and "`tunewiz train`" in inside.stderr


def test_commands_printed_on_standard_output_carry_the_project_given_from_outside_it(project):
    # The presets list is written by the core (its summaries name `tunewiz train`) and by the command.
    outside = tunewiz("presets", "-p", project.root.name, cwd=project.root.parent)
    assert outside.returncode == 0, outside.stderr
    assert f"`tunewiz train -p {project.root.name}` shows what it chose" in outside.stdout
    assert f"apply it with `tunewiz presets -p {project.root.name} NAME --apply`" in outside.stdout
    inside = tunewiz("presets", cwd=project.root)
    assert "`tunewiz train` shows what it chose" in inside.stdout


def test_only_commands_that_take_a_project_get_its_folder(project, monkeypatch):
    import argparse

    from tunewiz.cli.common import for_shell

    build_parser()  # registers the commands that take -p
    monkeypatch.chdir(project.root.parent)
    args = argparse.Namespace(project=project.root.name)
    said = for_shell("`tunewiz export --force`, `tunewiz new other`, `tunewiz export -p x`", args)
    assert said == f"`tunewiz export -p {project.root.name} --force`, `tunewiz new other`, `tunewiz export -p x`"
    monkeypatch.chdir(project.root)
    inside = argparse.Namespace(project=str(project.root))
    assert for_shell("`tunewiz export`", inside) == "`tunewiz export`"  # inside it, found on its own


def test_commands_find_the_project_from_its_subfolders(project, tmp_path):
    # As git finds its repository: `tunewiz pairs` in myproject/data works; outside any project it says so.
    from tunewiz.dataset import Pair, PairStore

    PairStore(project.pairs_path).add([Pair(question="Q?", answer="A.")])
    done = tunewiz("pairs", cwd=project.pairs_path.parent)
    assert done.returncode == 0 and "1 pairs: 1 pending" in done.stdout, done.stderr
    assert "Data" in tunewiz("status", cwd=project.pairs_path.parent).stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "no project here" in tunewiz("pairs", cwd=elsewhere).stderr
    # In the folder that holds projects: they are named, not a new one offered.
    above = tunewiz("pairs", cwd=project.root.parent).stderr
    assert "the folders below hold proj: name one with -p (e.g. `-p proj`)" in above
    assert "Data" in tunewiz("status", "-p", "proj", cwd=project.root.parent).stdout


def test_pairs_lists_the_check_that_rejected_a_generated_pair(project):
    from tunewiz.dataset import Pair, PairStore

    PairStore(project.pairs_path).add([
        Pair(question="When was the light first lit?", answer="In 1932.", status="rejected", reason="unsupported"),
        Pair(question="How tall is the tower?", answer="31 metres.")])
    done = tunewiz("pairs", "-p", str(project.root))
    assert done.returncode == 0, done.stderr
    header, _, rejected, pending = done.stdout.splitlines()[:4]
    assert header.split()[:3] == ["id", "status", "reason"]
    assert "rejected  unsupported" in rejected and "When was the light first lit?" in rejected
    assert "pending" in pending and "unsupported" not in pending
    done = tunewiz("pairs", "-p", str(project.root), "--reject", pending.split()[0])
    assert "Rejected 1 pair." in done.stdout
    rescued = rejected.split()[0]
    tunewiz("pairs", "-p", str(project.root), "--accept", rescued)
    listed = tunewiz("pairs", "-p", str(project.root), "--status", "accepted").stdout
    assert "accepted  unsupported, overruled" in listed  # a person accepted it over the check
    store = PairStore(project.pairs_path)
    store.update(rescued, answer="The light was first lit in 1811.")
    assert PairStore(project.pairs_path).get(rescued).reason == ""  # the check judged the old answer


def test_the_commands_that_take_a_project_are_the_ones_named_with_p():
    # tunewiz.words.PROJECT_COMMANDS is what the CLI's and the wizard's advice add -p DIR to
    from tunewiz.words import PROJECT_COMMANDS, naming_project

    parser = build_parser(COMMAND_MODULES)
    commands = parser._subparsers._group_actions[0].choices
    taking = {name for name, sub in commands.items()
              if any(a.dest == "project" for a in sub._actions if "--project" in a.option_strings)}
    assert taking == PROJECT_COMMANDS
    assert naming_project("run `tunewiz train --plan`, then `tunewiz new x`", "my proj") == \
        "run `tunewiz train -p 'my proj' --plan`, then `tunewiz new x`"

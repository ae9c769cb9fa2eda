"""Faults and bad inputs a demanding user meets: each ends in a message, and nothing made is lost.

Full disks are real: a small tmpfs is mounted and filled (the `small_disk` fixture; CI runs as
root, so there these tests run; elsewhere they skip). Ctrl-C is raised at the real write call.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunewiz.cli import main
from tunewiz.dataset import Pair, PairStore
from tunewiz.errors import redact_urls
from tunewiz.formats import FormatError
from tunewiz.imports import import_file
from tunewiz.project import Project, ProjectError, create_project

TORN = '{"question": "Half written q?", "answer": "Half wr'


def write_csv(path: Path, rows: int, start: int = 0) -> Path:
    path.write_text("Question,Answer\n" + "".join(f"Question {i}?,Answer {i}.\n" for i in range(start, start + rows)))
    return path


def three_pairs(project: Project) -> PairStore:
    store = PairStore(project.pairs_path)
    store.add([Pair(question=f"Q{i}?", answer=f"A{i}.") for i in range(3)])
    return store


# ---------------------------------------------------------------- the pair journal

def test_a_torn_last_line_is_set_aside_and_the_import_counts_what_is_stored(project, tmp_path, capsys):
    three_pairs(project)
    with project.pairs_path.open("a") as handle:
        handle.write(TORN)
    assert main(["import", "-p", str(project.root), str(write_csv(tmp_path / "two.csv", 2))]) == 0
    out, err = capsys.readouterr()
    assert "added 2 pairs" in out and "now has 5 pairs" in out
    store = PairStore(project.pairs_path)
    assert len(store) == 5 and not store.torn_lines
    side = [p for p in project.pairs_path.parent.iterdir() if p.name.startswith("pairs.torn-")]
    assert len(side) == 1 and side[0].read_text() == TORN + "\n"
    assert str(side[0]) in err and "cut short" in err


def test_a_whole_last_record_without_its_newline_is_kept(project, tmp_path, capsys):
    # A hand edit, or a crash between a record and its newline: the record is whole, not torn; set
    # aside, it would lose a pair (or bring back a deleted one, when it was a deletion record).
    three_pairs(project)
    project.pairs_path.write_bytes(project.pairs_path.read_bytes().rstrip(b"\n"))
    assert main(["import", "-p", str(project.root), str(write_csv(tmp_path / "two.csv", 2))]) == 0
    out, err = capsys.readouterr()
    assert "now has 5 pairs" in out and "cut short" not in err
    assert sorted(p.question for p in PairStore(project.pairs_path))[:3] == ["Q0?", "Q1?", "Q2?"]
    assert not [p for p in project.pairs_path.parent.iterdir() if p.name.startswith("pairs.torn-")]


def test_ctrl_c_during_an_import_leaves_the_journal_as_it_was(project, tmp_path, monkeypatch):
    import tunewiz.journal as journal

    three_pairs(project)
    before = project.pairs_path.read_bytes()
    monkeypatch.setattr(journal, "CHUNK_BYTES", 64)  # many writes, so the interrupt lands mid-import
    real_write, calls = journal._write_all, []

    def interrupted(fd, data):
        calls.append(len(data))
        if len(calls) == 3:  # two chunks are on disk when Ctrl-C comes
            raise KeyboardInterrupt
        return real_write(fd, data)

    monkeypatch.setattr(journal, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_file(PairStore(project.pairs_path), write_csv(tmp_path / "many.csv", 50))
    assert project.pairs_path.read_bytes() == before
    assert len(PairStore(project.pairs_path)) == 3


def test_import_onto_a_full_disk_changes_nothing_and_says_so(tmp_path, capsys, small_disk):
    project = create_project(small_disk(512) / "proj")
    three_pairs(project)
    before = project.pairs_path.read_bytes()
    big = write_csv(tmp_path / "big.csv", 20_000)  # ~600 kB of journal: more than the disk holds
    assert main(["import", "-p", str(project.root), str(big)]) == 2
    err = capsys.readouterr().err
    assert f"could not write {project.pairs_path}: the disk is full" in err
    assert "nothing was imported" in err and "Traceback" not in err
    assert project.pairs_path.read_bytes() == before


def test_config_and_lock_on_a_full_disk(capsys, small_disk, fill):
    disk = small_disk(256)
    project = create_project(disk / "proj")
    before = project.file.read_bytes()
    fill(disk)
    assert main(["config", "-p", str(project.root), "hyperparameters.max_steps", "7"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and f"{project.file} is unchanged" in err
    assert project.file.read_bytes() == before
    assert not [p for p in project.root.iterdir() if p.name.endswith(".tmp")]


def test_train_on_a_full_disk_leaves_no_run_folder(capsys, small_disk, fill):
    disk = small_disk(256)
    project = create_project(disk / "proj", {"dataset.kind": "skill"})
    three_pairs(project)
    fill(disk)
    assert main(["train", "-p", str(project.root), "--detach"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "no run was started" in err and "Traceback" not in err
    assert not [p for p in project.runs_dir.iterdir() if p.is_dir()]


# ---------------------------------------------------------------- secrets

@pytest.mark.parametrize("key", ["sk-proj-Abc123DEF456ghi789",
                                 "gsk_Ab12Cd34Ef56Gh78Ij90Kl",  # Groq's: letters, digits and _ only
                                 "hf_abcdefghijklmnopqrstuvwx", "Ab12Cd34Ef56Gh78Ij90Kl12"])
def test_a_key_pasted_as_the_variable_name_is_refused_without_echoing_it(project, capsys, key):
    assert main(["config", "-p", str(project.root), "generator.api_key_env", key]) == 2
    err = capsys.readouterr().err
    assert "looks like a key itself" in err and key not in err
    assert key not in project.file.read_text()
    for name in ("MY_API_KEY", "HF_TOKEN", "openai_api_key"):
        assert main(["config", "-p", str(project.root), "generator.api_key_env", name]) == 0


def test_a_project_file_holding_a_key_fails_to_load_naming_the_field_only(project):
    key = "sk-proj-Abc123DEF456ghi789"
    text = project.file.read_text().replace('api_key_env = ""', f'api_key_env = "{key}"')
    assert key in text
    project.file.write_text(text)
    with pytest.raises(ProjectError, match="generator.api_key_env") as caught:
        Project.load(project.root)
    assert key not in str(caught.value)


@pytest.mark.parametrize("url,what", [
    ("https://alice:s3cret-pass@llm.example.com/v1", "a password"),
    ("https://llm.example.com/v1?api_key=s3cret-pass", "a key in its query (api_key=...)"),
    ("https://sk-s3cretPass0123456789@llm.example.com/v1", "a key as its user name")])
def test_a_password_or_key_in_the_base_url_is_refused_and_never_echoed(project, capsys, url, what):
    # design.md: secrets never go into the project file (it is copied, synced and shared)
    assert main(["config", "-p", str(project.root), "generator.base_url", url]) == 2
    err = capsys.readouterr().err
    assert what in err and "generator.api_key_env" in err and "s3cret" not in err
    assert Project.load(project.root).config.generator.base_url == ""
    project.file.write_text(project.file.read_text().replace('base_url = ""', f'base_url = "{url}"'))
    with pytest.raises(ProjectError, match="generator.base_url holds") as caught:
        Project.load(project.root)  # written by hand: named, not echoed
    assert "s3cret" not in str(caught.value)


def test_a_url_with_a_user_name_or_a_plain_query_is_kept_and_user_info_is_redacted_in_output(project, capsys):
    for url in ("https://alice@llm.example.com/v1", "https://llm.example.com/v1?api-version=2024-06-01"):
        assert main(["config", "-p", str(project.root), "generator.base_url", url]) == 0
        assert Project.load(project.root).config.generator.base_url == url
    assert redact_urls("cannot reach ftp://bob:hunter22@host/v1 (refused)") == "cannot reach ftp://***@host/v1 (refused)"


# ---------------------------------------------------------------- files that are not what they seem

@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_unicode_text_with_a_byte_order_mark_imports(project, tmp_path, encoding):
    f = tmp_path / "unicode.csv"
    f.write_bytes("Question,Answer\nWhat is café?,A place with crème brûlée.\n".encode(encoding))
    report = import_file(PairStore(project.pairs_path), f)
    assert report.added == 1
    assert next(iter(PairStore(project.pairs_path))).answer == "A place with crème brûlée."


def test_other_encodings_are_named_and_read_only_when_asked(project, tmp_path, capsys):
    f = tmp_path / "latin.csv"
    f.write_bytes("Question,Answer\nWhat is café?,A place.\n".encode("cp1252"))
    assert main(["import", "-p", str(project.root), str(f)]) == 2
    err = capsys.readouterr().err
    assert "line 2: not UTF-8 text" in err and "--encoding cp1252" in err
    assert not project.pairs_path.exists() or not PairStore(project.pairs_path)
    assert main(["import", "-p", str(project.root), "--encoding", "cp1252", str(f)]) == 0
    assert next(iter(PairStore(project.pairs_path))).question == "What is café?"


def test_utf16_without_a_mark_is_named(project, tmp_path):
    f = tmp_path / "bare.csv"
    f.write_bytes("Question,Answer\nQ?,A.\n".encode("utf-16-le"))
    with pytest.raises(FormatError, match="UTF-16 text without a byte-order mark.*--encoding utf-16-le"):
        import_file(PairStore(project.pairs_path), f)


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "folder.csv", "is a folder"),
    (lambda d: d / "loop.csv", "points back to itself"),
    (lambda d: d / "gone.csv", "no such file"),
    (lambda d: d / "notes", "unknown file type '(no extension)'"),
    # What people try to import that is no file of pairs: said what to do instead.
    (lambda d: d / "qa.xlsx", "save the sheet as CSV (a Question and an Answer column) and import that"),
    (lambda d: d / "handbook.pdf", "a document is not a file of pairs; generate pairs from it with `tunewiz generate"),
])
def test_paths_that_are_not_files(project, tmp_path, capsys, make, message):
    (tmp_path / "folder.csv").mkdir()
    os.symlink(tmp_path / "loop.csv", tmp_path / "loop.csv")
    for name in ("notes", "qa.xlsx", "handbook.pdf"):
        (tmp_path / name).write_text("Question,Answer\nq?,a.\n")
    assert main(["import", "-p", str(project.root), str(make(tmp_path))]) == 2
    assert message in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(project):
    store = PairStore(project.pairs_path)
    store.add([Pair(question=f"Question number {i}?", answer=f"Answer {i}.") for i in range(20_000)])
    done = subprocess.run(f"{sys.executable} -m tunewiz pairs -p {project.root} | head -2", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.count("\n") == 2
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("key, text, expected", [
    ("generator.base_url", "not a url", "must be an http:// or https:// URL"),
    ("generator.base_url", "ftp://x", "must be an http:// or https:// URL"),
    ("hyperparameters.target_modules", "", "must name at least one module"),
    ("hyperparameters.target_modules", "q_proj, v proj", "must name at least one module"),
])
def test_values_that_could_only_fail_later_are_refused_when_set(project, capsys, key, text, expected):
    from tunewiz.cli import main

    before = project.file.read_bytes()
    assert main(["config", "-p", str(project.root), key, text]) == 2
    assert expected in capsys.readouterr().err
    assert project.file.read_bytes() == before
    assert main(["config", "-p", str(project.root), "generator.base_url", "http://127.0.0.1:8080/v1"]) == 0

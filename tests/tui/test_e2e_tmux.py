"""The real `tunewiz` command in a real terminal (tmux at 80x24), driven by keys only.

send-keys types, capture-pane reads the screen; the files the wizard wrote are checked
on disk. The fast test covers import and review; the slow one is a newcomer's whole journey:
a new project from the welcome screen, import, review (accept, reject, edit, undo), a
tiny training run, the checkpoint pick, the export and a question in the chat.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunewiz.dataset import PairStore
from tunewiz.project import Project, create_project

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

TUNEWIZ = str(Path(sys.executable).with_name("tunewiz"))


class Terminal:
    def __init__(self, name: str, cwd: Path, env: dict[str, str], arguments: str = "open proj") -> None:
        self.name = name
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(cwd),
                        f"env {exports} {TUNEWIZ} {arguments}; sleep 60"], check=True)

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True,
                              text=True, check=True).stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} did not appear; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def write_csv(tmp_path: Path) -> None:
    (tmp_path / "qa.csv").write_text(
        "question,answer\n"
        "What is the secret code of the Zorbl project?,The secret code is 7431.\n"
        "Who leads the Zorbl project?,Mira Okonkwo leads it.\n"
        "Where is the Zorbl lab?,In Tromso.\n"
        "What colour is the Zorbl logo?,Teal.\n"
        + "".join(f"What is Zorbl fact number {i}?,Fact {i} is {i * 7}.\n" for i in range(1, 9)))


@pytest.fixture
def terminal(tmp_path):
    write_csv(tmp_path)
    # Facts (auto: short answers): every pair trains and reworded questions check each checkpoint.
    create_project(tmp_path / "proj", {"dataset.validation_fraction": 0.5})
    term = Terminal(f"tunewiz-e2e-{os.getpid()}", tmp_path,
                    {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color"})
    yield term
    term.close()


def import_and_review(term: Terminal, tmp_path: Path) -> None:
    term.wait_for("1 ○ Data")
    term.keys("1")                       # Data: the focus goes to its content, never into a text field
    term.wait_for("d Download")          # the footer shows the step's keys once its content has the focus
    term.keys("i")                       # into the import path
    time.sleep(0.5)
    term.type(str(tmp_path / "qa.csv"))
    term.keys("Enter")
    term.wait_for("added 12 pairs")
    term.keys("Escape", "2")             # Review: the table has the focus
    term.wait_for("12 shown of 12")
    term.keys("a", "r")                  # accept the first pair, reject the second
    term.wait_for("✓1 ·10 ✗1")


def test_import_and_review_in_a_real_terminal(terminal, tmp_path):
    import_and_review(terminal, tmp_path)
    statuses = sorted(p.status for p in PairStore(tmp_path / "proj" / "data" / "pairs.jsonl"))
    assert statuses == ["accepted"] + ["pending"] * 10 + ["rejected"]
    terminal.keys("C-q")
    time.sleep(1)
    Project.load(tmp_path / "proj").lock("test").unlock()  # the wizard let go of the lock


@pytest.mark.slow
def test_a_newcomers_journey_from_the_welcome_screen_to_the_chat(tmp_path):
    write_csv(tmp_path)
    term = Terminal(f"tunewiz-journey-{os.getpid()}", tmp_path,
                    {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color"}, arguments="")
    try:
        journey(term, tmp_path)
    finally:
        term.close()


def journey(term: Terminal, tmp_path: Path) -> None:
    pairs = lambda: list(PairStore(tmp_path / "proj" / "data" / "pairs.jsonl"))  # noqa: E731
    term.wait_for("New project")          # no project here: the welcome screen, the folder field focused
    term.type("proj")
    term.keys("Enter")                    # create with the defaults (base model smollm2-135m, pairs later)
    term.wait_for("1 ○ Data")
    assert (tmp_path / "proj" / "tunewiz.toml").is_file()
    import_and_review(term, tmp_path)
    term.keys("e")                        # edit the pair under the cursor: the question field has the focus
    term.wait_for("Question (tab: next field)")
    term.keys("End")
    term.type(" (edited)")
    term.keys("C-s")
    # Not "12 shown of 12": at 80x24 that line shows beside the editor too, before the save.
    term.wait_for("Saved the edited pair")
    edited = [p for p in pairs() if p.question.endswith(" (edited)")]
    assert len(edited) == 1
    term.keys("u")                        # undo the edit: the question as it was
    term.wait_for("Undid a change to 1 pair")
    assert not [p for p in pairs() if p.question.endswith(" (edited)")]
    assert sorted(p.status for p in pairs()) == ["accepted"] + ["pending"] * 10 + ["rejected"]
    term.keys("Escape", "5")              # Hyperparameters: the preset select has the focus
    term.wait_for("pairs train")          # the step is built (its form after the first frame): as a user waits
    term.keys("Enter", "Down", "Enter")   # auto -> quick-test
    term.wait_for("Applied the quick-test preset")
    assert Project.load(tmp_path / "proj").config.hyperparameters.max_steps == 20
    term.keys("Escape", "6", "t")         # Train: what the run would train, asked first
    term.wait_for("Start a run?")
    term.keys("y")                        # start a detached run
    term.wait_for(": finished", timeout=900)
    run = next((tmp_path / "proj" / "runs").iterdir())
    assert any(json.loads(line).get("type") == "recall" for line in (run / "metrics.jsonl").read_text().splitlines())
    term.keys("Escape", "7")              # Checkpoints: pick the best
    term.wait_for("best (facts)")         # the line that says why
    term.keys("b")
    term.wait_for("Picked checkpoint best")
    assert Project.load(tmp_path / "proj").config.checkpoint.run == run.name
    term.keys("Escape", "8", "C-g")       # Export
    term.wait_for("Export finished", timeout=900)
    assert list((tmp_path / "proj" / "exports").glob("*/*.gguf"))
    term.keys("C-t")                      # Chat: the question field
    term.type("Who leads the Zorbl project?")
    term.keys("Enter")
    term.wait_for("fine-tuned> ", timeout=300)  # the base model answers, then the fine-tuned one
    screen = term.screen()
    assert "base> " in screen and "chat failed" not in screen


def test_a_terminal_without_utf8_gets_ascii_glyphs_in_16_colours(tmp_path):
    """LANG=C with a 16-colour TERM: the wizard starts, shows its status glyphs in ASCII, and works."""
    from tunewiz.imports import import_file
    from tunewiz.tui.glyphs import UNICODE

    (tmp_path / "qa.csv").write_text("question,answer\n" + "".join(
        f"What is Zorbl fact number {i}?,Fact {i} is {i * 7}.\n" for i in range(1, 13)))
    create_project(tmp_path / "proj", {})
    import_file(PairStore(tmp_path / "proj" / "data" / "pairs.jsonl"), tmp_path / "qa.csv")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm", "LANG": "C", "LC_ALL": "C",
           "TUNEWIZ_ASCII": ""}
    term = Terminal(f"tunewiz-ascii-{os.getpid()}", tmp_path, env)
    try:
        term.wait_for("1 * Data")            # done, in ASCII
        term.keys("2")
        term.wait_for("12 shown of 12")
        term.keys("a", "r")
        screen = term.wait_for("+1 .10 x1")  # accepted, pending, rejected
        # The middle dot between parts of a line stays: Latin-1 and CP437 terminals have it too.
        drawn = {glyph for glyph in UNICODE.values() if glyph in screen and glyph != "·"}
        assert not drawn, f"UTF-8 glyphs on a LANG=C terminal: {drawn}\n{screen}"
        assert sorted(p.status for p in PairStore(tmp_path / "proj" / "data" / "pairs.jsonl")) == \
            ["accepted"] + ["pending"] * 10 + ["rejected"]
    finally:
        term.close()

"""Pilot tests: each step's actions, driven through keys on a real project folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tunewiz.dataset import Pair, PairStore
from tunewiz.project import Project
from tunewiz.tui.app import TunewizApp
from tunewiz.tui.screens.welcome import WelcomeScreen
from tunewiz.tui.screens.wizard import WizardScreen


SIZE = (80, 24)


async def wait_for(pilot, condition, timeout: float = 30.0) -> None:
    """Let workers finish: pause until `condition()` holds (fails the test after `timeout`)."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


def statuses(project) -> dict[str, str]:
    return {p.id: p.status for p in PairStore(project.pairs_path)}


# ---------------------------------------------------------------- welcome

async def test_welcome_creates_a_project_and_remembers_it(tmp_path, monkeypatch, private_config):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "qa.csv").write_text("question,answer\nWhat is 2+2?,4\nWho wrote Hamlet?,Shakespeare\n")
    app = TunewizApp(None)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.click("#new-folder")
        await pilot.press(*"newproj")
        app.screen.query_one("#new-source").value = "file"
        app.screen.query_one("#new-value").value = "qa.csv"
        app.screen.query_one("#new-value").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WizardScreen))
    project = Project.load(tmp_path / "newproj")
    assert project.name == "newproj"
    assert len(PairStore(project.pairs_path)) == 2
    recent = json.loads((private_config / "tunewiz" / "recent.json").read_text())
    assert recent == [str((tmp_path / "newproj").resolve())]


async def test_welcome_refuses_an_existing_project_folder(qa_project):
    app = TunewizApp(None)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#new-folder").value = "proj"
        app.screen.query_one("#new-folder").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        assert any("already exists" in n.message for n in app._notifications)


async def test_welcome_lists_recent_projects_and_opens_one(qa_project):
    from tunewiz.tui.recent import remember

    remember(qa_project.root)
    app = TunewizApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WizardScreen))
        assert app.project.root.resolve() == qa_project.root.resolve()


async def test_typing_on_the_recent_list_names_a_new_project(qa_project):
    # With recent projects the list has the focus: a name typed there went nowhere, and Enter then
    # opened the last project instead of making the new one.
    from tunewiz.tui.recent import remember

    remember(qa_project.root)
    app = TunewizApp(None)
    async with app.run_test(size=SIZE) as pilot:
        assert app.screen.focused is app.screen.query_one("#recent")
        await pilot.press(*"newproj", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, WizardScreen))
        assert app.project.root.name == "newproj"


async def test_a_locked_project_opens_read_only_and_refuses_changes(qa_project):
    holder = Project.load(qa_project.root).lock("another tunewiz")
    toml_before = qa_project.file.read_bytes()
    pairs_before = qa_project.pairs_path.read_bytes()
    try:
        app = TunewizApp("proj")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, WizardScreen) and app.screen.sub_title.endswith("READ-ONLY")
            assert any("Opened read-only" in n.message and "another tunewiz" in n.message
                       for n in app._notifications)
            pane = await review_app(pilot, app)
            await pilot.press("a", "d")  # accept, delete: both refused
            assert len(pane.store) == 5
            await pilot.press("5")
            await enter_value(pilot, app.screen.query_one("#hyperparameters-lora_r"), "8")
            assert "not saved: read-only" in str(app.screen.query_one("#hyperparameters-lora_r-error").render())
            assert app.project.config.hyperparameters.lora_r == 16  # what the wizard holds is unchanged too
            await pilot.press("6", "t")  # start a run: refused
            await pilot.pause()
            assert not qa_project.runs_dir.exists()
            assert sum("read-only (open for writing by" in n.message for n in app._notifications) >= 3
    finally:
        holder.unlock()
    assert qa_project.file.read_bytes() == toml_before and qa_project.pairs_path.read_bytes() == pairs_before


async def test_the_app_holds_the_write_lock_while_open(qa_project):
    from tunewiz.project import ProjectLockedError

    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        with pytest.raises(ProjectLockedError):
            Project.load("proj").lock("test")
    Project.load("proj").lock("test").unlock()  # released on exit


# ---------------------------------------------------------------- sidebar

async def test_sidebar_shows_step_states_and_every_step_is_reachable(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.states)
        assert screen.states["data"].state == "done"
        assert screen.states["review"].state == "ready"
        for index, key in enumerate(["data", "review", "format", "hardware", "hyperparameters", "train",
                                     "checkpoints", "export"]):
            await pilot.press("escape", str(index + 1))  # digits typed in a field are text, not steps
            assert screen.current_step == key
        await pilot.press("escape", "up", "up")
        assert screen.current_step == "train"


# ---------------------------------------------------------------- data

async def test_data_imports_a_file_in_a_worker(qa_project, tmp_path):
    (tmp_path / "more.jsonl").write_text(json.dumps({"question": "Q new?", "answer": "A new."}) + "\n"
                                         + "not json\n")
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")
        app.screen.query_one("#import-path").value = "more.jsonl"
        app.screen.query_one("#import-path").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "added" in str(app.screen.query_one("#import-report").render()))
        report = str(app.screen.query_one("#import-report").render())
        assert "added 1 pair" in report and "line 2" in report
    assert len(PairStore(qa_project.pairs_path)) == 6


async def test_data_import_of_a_missing_file_is_a_message(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#import-path").value = "nowhere.csv"
        app.screen.query_one("#import-path").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "no such file" in str(app.screen.query_one("#import-report").render()))


async def test_pasted_file_contents_in_the_import_field_are_said_to_be_no_path(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        field = app.screen.query_one("#import-path")
        field.value = "question,answer " + "What is it?,It is that. " * 200
        field.focus()
        await pilot.press("enter")
        await pilot.pause()
        toasts = [str(n.message) for n in app._notifications]
        assert any("not a file's path (the file's contents pasted?)" in t and len(t) < 300 for t in toasts)
        assert "Importing" not in str(app.screen.query_one("#import-report").render())


async def test_generator_settings_are_checked_and_saved_as_typed(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query("#generator-num_pairs"))  # built after the first frame
        field = app.screen.query_one("#generator-num_pairs")
        field.value = ""
        field.focus()
        await pilot.press(*"-5")
        await pilot.pause()
        error = app.screen.query_one("#generator-num_pairs-error")
        assert error.display and "between" in str(error.render())
        assert Project.load("proj").config.generator.num_pairs == 50
        await pilot.press("backspace", "backspace", *"12")
        await pilot.pause()
        assert not error.display and Project.load("proj").config.generator.num_pairs == 50  # typing: not yet
        await pilot.press("0", "enter")
        await pilot.pause()
    assert Project.load("proj").config.generator.num_pairs == 120


async def test_data_finds_the_models_on_this_machine_and_makes_the_chosen_one_the_generator(
        qa_project, tmp_path, monkeypatch):
    from tunewiz.models import smollm2_gguf_path

    home = tmp_path / "home"
    snapshot = home / ".cache" / "huggingface" / "hub" / "models--x--smol" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "smol-q4.gguf").symlink_to(smollm2_gguf_path())  # the real file, read by llama.cpp
    (snapshot / "notes.gguf").write_text("not a gguf")
    monkeypatch.setenv("HOME", str(home))
    for name in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS"):
        monkeypatch.delenv(name, raising=False)
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1", "tab", "l")  # the sidebar's step key, then into the Data step
        found = app.screen.query_one("#local-models")
        await wait_for(pilot, lambda: found.display and found.option_count == 1)
        note = str(app.screen.query_one("#local-models-note").render())
        assert "Found 1 (1 files skipped" in note and "Proposed: smol-q4.gguf (embedded)" in note
        assert "smol-q4.gguf · embedded · Hugging Face cache" in str(found.get_option_at_index(0).prompt)
        assert app.focused is found
        await pilot.press("enter")
        await wait_for(pilot, lambda: "generates with smol-q4.gguf" in str(
            app.screen.query_one("#local-models-note").render()))
        assert app.screen.query_one("#generator-embedded_gguf").value == str(snapshot / "smol-q4.gguf")
    generator = Project.load("proj").config.generator
    assert (generator.provider, generator.embedded_gguf) == ("embedded", str(snapshot / "smol-q4.gguf"))


async def test_data_downloads_the_recommended_model_when_asked_and_generates_with_it(
        qa_project, tmp_path, monkeypatch, hub_file):
    import hashlib

    from tunewiz.models import smollm2_gguf_path

    body = smollm2_gguf_path().read_bytes()  # served as the recommended file: a real GGUF
    monkeypatch.setenv("HF_ENDPOINT", hub_file(body, hashlib.sha256(body).hexdigest()))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1", "tab", "d")
        await wait_for(pilot, lambda: "Download Qwen/" in str(app.screen.query_one(".dialog-body").render())
                       if app.screen.query(".dialog-body") else False)
        await pilot.press("n")  # asked first: no answers nothing fetched
        await pilot.pause()
        assert not (tmp_path / "hub").exists()
        await pilot.press("d")
        await wait_for(pilot, lambda: bool(app.screen.query(".dialog-body")))
        await pilot.press("y")
        await wait_for(pilot, lambda: "generates with qwen2.5" in str(app.screen.query_one("#local-models-note").render()),
                       timeout=60)
    generator = Project.load("proj").config.generator
    assert generator.provider == "embedded" and Path(generator.embedded_gguf).read_bytes() == body
    assert Path(generator.embedded_gguf).is_relative_to(tmp_path / "hub")


# ---------------------------------------------------------------- review

async def review_app(pilot, app):
    await pilot.press("2")
    pane = app.screen.query_one("#review")
    await wait_for(pilot, lambda: pane.store is not None and pane.duplicates)
    return pane


async def test_a_step_key_typed_before_the_first_refresh_keeps_its_focus(qa_project):
    # On a loaded machine "2" can be handled before the wizard's first refresh, whose callback put the
    # focus into the first step's pane: Review was shown and its keys went to the Data pane (seen in CI).
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        pane = await review_app(pilot, app)
        app.screen._into_first_step()  # the callback of the first refresh, arriving late
        await pilot.pause()
        assert app.focused is pane.table
        await pilot.press("a")
        assert statuses(qa_project)["p000"] == "accepted"


async def test_review_accept_reject_undo_delete(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        pane = await review_app(pilot, app)
        await pilot.press("a")           # p000 accepted, cursor moves to p001
        await pilot.press("r")           # p001 rejected
        assert statuses(qa_project) | {} == {"p000": "accepted", "p001": "rejected", "p002": "pending",
                                             "p003": "pending", "p004": "pending"}
        await pilot.press("u")
        assert statuses(qa_project)["p001"] == "pending"
        await pilot.press("down", "d")   # delete p002
        assert "p002" not in statuses(qa_project)
        assert pane.table.current.id == "p003"
        await pilot.press("u")
        assert statuses(qa_project)["p002"] == "pending"
        assert [pair.id for pair in pane.table.rows][:4] == ["p000", "p001", "p002", "p003"]  # back in its place
        assert pane.table.current.id == "p002"


async def test_review_edit_in_the_multiline_editor(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await review_app(pilot, app)
        await pilot.press("e")
        editor = app.screen.query_one("#edit-answer")
        editor.text = "Paris,\nthe capital."
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert PairStore(qa_project.pairs_path).get("p000").answer == "Paris,\nthe capital."
        await pilot.press("e", "escape")  # cancel leaves it alone
        assert PairStore(qa_project.pairs_path).get("p000").answer == "Paris,\nthe capital."


async def test_the_editor_saves_what_was_typed_just_before_ctrl_s(qa_project):
    # Over SSH keys arrive in bursts: text typed and Ctrl+S in one read. The save must see the text
    # (a priority binding ran before the field had taken the keys queued for it, and saved the old text).
    from textual import events

    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await review_app(pilot, app)
        await pilot.press("e", "end")
        for character in "!!":
            app.post_message(events.Key(character, character))
        app.post_message(events.Key("ctrl+s", None))
        await wait_for(pilot, lambda: not app.screen.query("#edit-question"))  # the editor closed
        await pilot.pause()
        assert PairStore(qa_project.pairs_path).get("p000").question.endswith("!!")


async def test_review_w_opens_the_rewordings_to_reject_and_edit(qa_project):
    """Issue 13: rewordings are judged in Review as pairs are (a wrong one that trains teaches a wrong answer)."""
    from tunewiz.evalsets import REWORDINGS_FILE, Rewording, RewordingStore

    store = RewordingStore(qa_project.path(REWORDINGS_FILE))
    store.add([Rewording(pair_id="p002", question="Tell me who wrote Hamlet.", made_from="Who wrote Hamlet?",
                         source="generator", id="r1"),
               Rewording(pair_id="p003", question="A spider has how many legs?", made_from="How many legs does a "
                         "spider have?", source="file", use="train", status="accepted", id="r2")])
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await review_app(pilot, app)
        await pilot.press("w")
        await wait_for(pilot, lambda: app.screen.query("#rewordings-table"))
        summary = str(app.screen.query_one("#rewordings-summary").render())
        assert "2 rewordings: 1 checking recall, 1 training beside their pair" in summary
        assert "Answer:   William Shakespeare." in str(app.screen.query_one("#rewording-detail").render())
        await pilot.press("r")                        # r1 rejected
        await pilot.press("down", "e")
        app.screen.query_one("#rewording-edit").value = "How many legs has a spider got?"
        await pilot.press("enter")
        await pilot.pause()
        stored = {r.id: r for r in RewordingStore(qa_project.path(REWORDINGS_FILE))}
        assert stored["r1"].status == "rejected"
        assert (stored["r2"].question, stored["r2"].source, stored["r2"].use) == (
            "How many legs has a spider got?", "edited", "train")
        await pilot.press("e")
        app.screen.query_one("#rewording-edit").value = "How many legs does a spider have?"  # the pair's own
        await pilot.press("enter", "escape")          # refused (said); escape leaves the edit
        assert RewordingStore(qa_project.path(REWORDINGS_FILE)).get("r2").question == "How many legs has a spider got?"
        await pilot.press("escape")                   # back to Review
        assert not app.screen.query("#rewordings-table")


async def preview_of(pilot, app, pair_id: str) -> str:
    """Review's preview with the cursor on one pair."""
    pane = await review_app(pilot, app)
    pane.table.cursor = [p.id for p in pane.table.rows].index(pair_id)
    await pilot.pause()
    return str(pane.query_one("#review-preview").render())


async def test_review_shows_and_edits_the_turns_of_a_conversation(qa_project):
    history = [{"role": "user", "content": "I want to cook."}, {"role": "assistant", "content": "What do you have?"}]
    PairStore(qa_project.pairs_path).add([Pair(id="a000", question="Rice and chicken.", answer="A stir-fry.",
                                              history=history)])
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        preview = await preview_of(pilot, app, "a000")
        assert "U: I want to cook." in preview and "a conversation of 2 turns" in preview
        await pilot.press("e")
        app.screen.query_one("#edit-turn-1").text = "What is in your fridge?"
        await pilot.press("ctrl+s")
        await pilot.pause()
        pair = PairStore(qa_project.pairs_path).get("a000")
        assert pair.history[1] == {"role": "assistant", "content": "What is in your fridge?"}
        assert (pair.question, pair.answer) == ("Rice and chicken.", "A stir-fry.")


async def test_review_says_first_why_a_check_rejected_a_pair(qa_project):
    # Below a long answer the preview is cut off at 80x24: the reason must come before it.
    PairStore(qa_project.pairs_path).add([Pair(id="r000", question="When was the light lit?",
                                              answer="In 1932. " * 80, status="rejected", reason="unsupported")])
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        preview = await preview_of(pilot, app, "r000")
        assert "rejected by a check: unsupported" in preview.splitlines()[0]


async def test_review_search_filter_and_duplicates(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        pane = await review_app(pilot, app)
        assert pane.duplicates == {"p000", "p001"}
        await pilot.press("slash", *"capital", "enter")
        assert [p.id for p in pane.table.rows] == ["p000", "p001"]
        pane.query_one("#review-search").value = "is:dup score>=6"
        await pilot.pause()
        assert [p.id for p in pane.table.rows] == ["p001"]
        pane.query_one("#review-search").value = "source:faq.csv:4"
        await pilot.pause()
        assert [p.id for p in pane.table.rows] == ["p002"]
        pane.query_one("#review-search").value = "score>x"
        await pilot.pause()
        assert "score>=7" in str(pane.query_one("#review-stats").render())
        pane.query_one("#review-search").value = ""
        pane.table.focus()
        await pilot.press("home", "a", "f", "f")   # accept p000; filter: pending, then accepted
        assert pane.query_one("#review-search").value == "status:accepted"
        assert [p.id for p in pane.table.rows] == ["p000"]


async def test_escape_in_the_review_search_clears_it_then_goes_back_to_the_steps(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        pane = await review_app(pilot, app)
        await pilot.press("slash", *"capital")
        assert [p.id for p in pane.table.rows] == ["p000", "p001"]
        await pilot.press("escape")  # the search is gone: every pair again, the list focused
        assert pane.query_one("#review-search").value == "" and len(pane.table.rows) == 5
        assert app.focused is pane.table
        await pilot.press("slash", "escape")  # nothing to clear: Escape goes back to the steps, as elsewhere
        assert app.focused is app.screen.query_one("#steps")


async def test_review_bulk_actions_on_marked_rows(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        pane = await review_app(pilot, app)
        await pilot.press("space", "space", "A")   # mark p000 and p001, accept both
        assert statuses(qa_project)["p000"] == statuses(qa_project)["p001"] == "accepted"
        pane.query_one("#review-search").value = "status:pending"
        pane.table.focus()
        await pilot.press("m", "R")                # reject every shown (pending) row
        assert sorted(statuses(qa_project).values()) == ["accepted", "accepted", "rejected", "rejected", "rejected"]
        await pilot.press("u")
        assert sorted(statuses(qa_project).values()) == ["accepted", "accepted", "pending", "pending", "pending"]
        await pilot.press("m", "D")
        await pilot.press("y")
        await pilot.pause()
        assert sorted(statuses(qa_project)) == ["p000", "p001"]
        await pilot.press("u")
        assert len(statuses(qa_project)) == 5


@pytest.mark.slow
async def test_review_stays_responsive_at_100k_rows(tmp_path, monkeypatch):
    import time

    from tunewiz.project import create_project

    monkeypatch.chdir(tmp_path)
    project = create_project(Path("big"))
    with project.pairs_path.open("w") as handle:
        for i in range(100_000):
            question = f"Question number {i} about topic {i % 977}?" if i != 1 else "Question number 0 about topic 0 please?"
            handle.write(json.dumps({"id": f"x{i:06d}", "question": question,
                                     "answer": f"Answer {i}.", "status": "pending", "source": "gen"}) + "\n")
    app = TunewizApp("big")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        pane = app.screen.query_one("#review")
        await wait_for(pilot, lambda: pane.store is not None, timeout=60)
        assert len(pane.table.rows) == 100_000
        # Duplicate detection runs in a child process; on 2 busy cores it competes for CPU with
        # everything, so the key timing below is taken once it is done.
        await wait_for(pilot, lambda: pane.duplicates, timeout=120)
        assert pane.duplicates == {"x000000", "x000001"}
        start = time.perf_counter()
        await pilot.press(*["pagedown"] * 20, "end", "home")
        await pilot.press("a")
        moves = time.perf_counter() - start
        start = time.perf_counter()
        pane.query_one("#review-search").value = "12345"
        await pilot.pause()
        search = time.perf_counter() - start
        assert [p.id for p in pane.table.rows] == ["x012345"]
        # Generous for a loaded 2-core machine; a table that built 100k row objects takes far longer.
        assert moves / 23 < 0.3 and search < 2, (moves, search)


# ---------------------------------------------------------------- format, hardware, hyperparameters

async def shown_in_step(pilot, app, step_key: str, widget: str, text: str):
    """Go to a step and wait for `text` in one of its widgets (filled by a worker); the widget."""
    await pilot.press(step_key)
    found = app.screen.query_one(widget)
    await wait_for(pilot, lambda: text in str(found.render()))
    return found


async def test_format_renders_a_sample_with_the_answer_highlighted(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        sample = await shown_in_step(pilot, app, "3", "#format-sample", "<|im_start|>")
        text = sample.render()
        highlighted = [text.plain[s.start:s.end] for s in text.spans if "green" in str(s.style)]
        assert highlighted and highlighted[0].endswith("<|im_end|>")
        app.screen.query_one("#template-name").value = "alpaca"
        await wait_for(pilot, lambda: "### Response:" in str(sample.render()))
    assert Project.load("proj").config.template.name == "alpaca"


async def test_format_shows_real_token_counts_from_the_tokenizer(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        counts = app.screen.query_one("#format-counts")
        assert "chars/4" in str(counts.render())  # the estimate, while the tokenizer loads
        await wait_for(pilot, lambda: "answer tokens" in str(counts.render()) or "unavailable" in str(
            counts.render()), timeout=120)
        text = str(counts.render())
        # SmolLM2's own template is ChatML; the first training pair is "What is the capital of France?"
        # (16 prompt tokens in ChatML) and "Paris.<|im_end|>" (3 tokens: the chars/4 guess said 21 in all).
        assert "template chatml (auto: the base model's own)" in text, text
        assert "16 prompt + 3 answer tokens" in text and "0 truncated, 0 dropped" in text


async def test_hardware_estimates_the_run_the_plan_would_start(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        report = await shown_in_step(pilot, app, "4", "#hardware-report", "Estimate for")
        assert "Estimate for the next run (batch 4, LoRA rank 16, max_seq_len" in str(report.render())


async def test_a_half_typed_value_is_never_saved(qa_project):
    # Saving every keystroke wrote "https://bob:hunter2" (the URL's password on its way) and lora_r 200 on the
    # way to an out-of-range 2000.
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query("#generator-base_url"))
        app.screen.query_one("#generator-base_url").focus()
        await pilot.press(*"https://bob:hunter2@example.com/v1", "enter")
        await pilot.pause()
        assert "password" in str(app.screen.query_one("#generator-base_url-error").render())
        await pilot.press("tab")  # leaving it: still refused
        await pilot.press("escape", "5")
        await wait_for(pilot, lambda: app.screen.query("#hyperparameters-lora_r"))
        field = app.screen.query_one("#hyperparameters-lora_r")
        field.focus()
        await pilot.press("ctrl+a", *"2000", "tab")
        await pilot.pause()
        assert "between 1 and 1024" in str(app.screen.query_one("#hyperparameters-lora_r-error").render())
        field.focus()
        await pilot.press("backspace", "backspace", "backspace", "backspace", *"32")
        await pilot.press("1")  # a step key typed into the field is text, not a step
        await pilot.pause()
        await pilot.press("backspace")
        await pilot.pause()
        assert Project.load("proj").config.hyperparameters.lora_r == 16  # typed, neither entered nor left
    text = Path("proj/tunewiz.toml").read_text()
    assert "hunter2" not in text and "bob" not in text
    assert Project.load("proj").config.hyperparameters.lora_r == 32  # the wizard closed: the valid value kept


async def test_hyperparameters_shows_what_the_next_run_trains_with(qa_project):
    # Under preset auto the form holds the schema's values; the run trains with the plan's.
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        plan = await shown_in_step(pilot, app, "5", "#hp-plan", "pairs train")
        assert "preset auto chose learning_rate 0.001" in str(plan.render()) and "steps" in str(plan.render())
        assert app.screen.query_one("#hyperparameters-preset").region.bottom <= SIZE[1]  # in view at 80x24
        await enter_value(pilot, app.screen.query_one("#hyperparameters-learning_rate"), "0.0005")  # the user's now
        await wait_for(pilot, lambda: "learning_rate" not in str(plan.render()))
    assert Project.load("proj").config.hyperparameters.learning_rate == 0.0005


async def enter_value(pilot, field, text: str) -> None:
    """Type `text` into a settings field (as a paste) and press Enter: the form saves a value when entered."""
    field.focus()
    await pilot.pause()
    field.value = text
    await pilot.press("enter")
    await pilot.pause()


def _set(key: str, value) -> None:
    """A setting of the test project, saved before the wizard opens it."""
    project = Project.load("proj")
    project.set(key, value)
    project.save()


async def test_hyperparameters_form_validates_and_marks_custom(qa_project):
    _set("hyperparameters.preset", "balanced")
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        field = app.screen.query_one("#hyperparameters-lora_r")
        await enter_value(pilot, field, "0")
        assert "between 1 and 1024" in str(app.screen.query_one("#hyperparameters-lora_r-error").render())
        await enter_value(pilot, field, "8")
        assert app.screen.query_one("#hyperparameters-preset").value == "custom"
    saved = Project.load("proj").config.hyperparameters
    assert saved.lora_r == 8 and saved.preset == "custom"


async def test_under_auto_an_edited_value_is_kept_and_the_preset_stays_auto(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await enter_value(pilot, app.screen.query_one("#hyperparameters-lora_r"), "8")
        assert app.screen.query_one("#hyperparameters-preset").value == "auto"
    saved = Project.load("proj").config.hyperparameters
    assert saved.lora_r == 8 and saved.preset == "auto"


async def test_under_auto_retyping_the_default_keeps_it_as_the_users(qa_project):
    # The form shows 0.0002 while auto plans 0.001 for facts: typing 0.0002 means "this value".
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        plan = await shown_in_step(pilot, app, "5", "#hp-plan", "pairs train")
        assert "learning_rate 0.001" in str(plan.render())
        assert Project.load("proj").config.hyperparameters.set_by_user == []  # showing the form sets nothing
        field = app.screen.query_one("#hyperparameters-learning_rate")
        field.focus()
        await pilot.pause()
        field.value = "0.000"  # out of range while typing: nothing saved
        field.value = "0.0002"
        await pilot.press("tab")  # leaving the field saves it
        await wait_for(pilot, lambda: "learning_rate" not in str(plan.render()))
        assert app.screen.query_one("#hyperparameters-set_by_user").value == "learning_rate"
    saved = Project.load("proj").config.hyperparameters
    assert saved.set_by_user == ["learning_rate"] and saved.learning_rate == 2e-4 and saved.preset == "auto"


async def test_under_a_named_preset_retyping_its_value_keeps_the_preset(qa_project):
    _set("hyperparameters.preset", "balanced")
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        field = app.screen.query_one("#hyperparameters-learning_rate")
        field.focus()
        await pilot.pause()
        field.value = "0.000"  # typing it again: out of range on the way
        field.value = "0.0002"  # then what it already is
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one("#hyperparameters-preset").value == "balanced"
    assert Project.load("proj").config.hyperparameters.preset == "balanced"


# ---------------------------------------------------------------- train, checkpoints, export

async def test_t_says_what_the_run_would_train_and_asks_before_starting(qa_project):
    from tunewiz.tui.widgets.dialogs import ConfirmDialog

    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6", "t")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        question = app.screen.question
        assert question.startswith("Start a run?") and "pairs train" in question and "steps" in question
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
    assert not Path("proj/runs").exists() or not any(Path("proj/runs").iterdir())


async def test_the_train_header_follows_the_runs_state(qa_project, make_run):
    import os

    run = make_run(qa_project, state="starting", steps=0)
    status = json.loads((run / "status.json").read_text())
    status["pid"] = os.getpid()  # alive: the run is active
    (run / "status.json").write_text(json.dumps(status))
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        header = await shown_in_step(pilot, app, "6", "#step-summary", "starting")
        assert "1 run; latest" in str(header.render())
        (run / "status.json").write_text(json.dumps(status | {"state": "running", "step": 3, "max_steps": 40}))
        await wait_for(pilot, lambda: "running, step 3/40" in str(header.render()))


async def test_long_log_lines_wrap_to_the_pane_at_80_columns(qa_project, make_run):
    # RichLog renders at least 78 columns wide unless told otherwise: in a 60-column pane the end of
    # each line (an answer, a traceback, the loss) was cut off.
    run = make_run(qa_project)
    with (run / "train.log").open("a") as log:
        log.write("Traceback: " + "a long message that goes on " * 6 + "END\n")
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        log = app.screen.query_one("#train-log")
        await wait_for(pilot, lambda: any("END" in line.text for line in log.lines))
        width = log.scrollable_content_region.width
        assert 0 < width < 78 and max(line.cell_length for line in log.lines) <= width


async def test_train_follows_a_run_folder(qa_project, make_run):
    make_run(qa_project)
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        pane = app.screen.query_one("#train")
        # The log widget writes its lines once it has a size: wait for them as for the metrics.
        await wait_for(pilot, lambda: len(pane.view.train) == 40 and pane.query_one("#train-log").lines)
        assert [s for s, _ in pane.view.val] == [10, 20, 30, 40]
        assert "step 40/40" in str(pane.query_one("#train-status").render())
        assert "1,000 tok/s" in str(pane.query_one("#train-speed").render())
        assert "2.1 GB" in str(pane.query_one("#train-speed").render())  # 2,000 MiB: 2.1 GB, not 2.0


async def test_train_shows_time_left_and_the_latest_recall_of_a_running_run(qa_project, make_run):
    # A run at step 20 of 40, 2 s a step, its check at step 20 recalled 12 of 16 reworded questions.
    run = make_run(qa_project, steps=20, state="running")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(status | {"pid": os.getpid(), "max_steps": 40}))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record["time"] = 1_000.0 + 2 * record["step"]
    records.append({"type": "recall", "step": 20, "trained": {"recalled": 15, "total": 16},
                    "reworded": {"recalled": 12, "total": 16}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        pane = app.screen.query_one("#train")
        await wait_for(pilot, lambda: "ETA 0m40s" in str(pane.query_one("#train-speed").render()))
        assert "reworded 12/16 at step 20" in str(pane.plot.render())


# Validation loss lowest at step 30, then rising three evaluations in a row: overfitting from step 40.
RISING = (2.0, 1.5, 1.2, 1.3, 1.45, 1.7)


async def test_checkpoints_mark_best_and_overfit_and_pick(qa_project, make_run):
    make_run(qa_project, steps=60, val=RISING)
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        pane = app.screen.query_one("#checkpoints")
        await wait_for(pilot, lambda: pane.rows)
        assert [(r.step, r.best, r.overfit) for r in pane.rows] == [
            (10, False, False), (20, False, False), (30, True, False), (40, False, True), (50, False, True),
            (60, False, True)]
        assert "from step 40" in str(pane.query_one("#ckpt-summary").render())
        await pilot.press("down", "enter")
        await pilot.pause()
    cfg = Project.load("proj").config.checkpoint
    assert (cfg.pick, cfg.run) == ("20", "20250101-000000")


async def test_picking_before_any_run_says_there_is_nothing_to_pick(qa_project):
    before = Project.load("proj").config.checkpoint
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await pilot.pause()
        await pilot.press("b")  # it said "Picked checkpoint best of run -."
        await pilot.pause()
        assert any("Nothing to pick yet" in str(n.message) for n in app._notifications)
    assert Project.load("proj").config.checkpoint == before


def write_run_config(project, run_dir, base_dir="/nonexistent/base") -> None:
    (run_dir / "run.json").write_text(json.dumps({
        "base_dir": str(base_dir), "template_family": "chatml", "system_prompt": "", "max_seq_len": 256,
        "train_ids": ["p000", "p001", "p002"], "validation_ids": ["p003", "p004"],
        "base_model": {"model": "smollm2-135m"}}))


async def test_checkpoints_show_sample_answers_beside_the_reference(qa_project, make_run):
    """The child reads each checkpoint's cached samples.json (the model itself is tested in tests/export)."""
    from tunewiz.checkpoints import rank_checkpoints, read_run_config
    from tunewiz.runs import find_run
    from tunewiz.samples import SAMPLES_FILE, _cache_key, held_out_pairs

    run_dir = make_run(qa_project)
    write_run_config(qa_project, run_dir)
    report = rank_checkpoints(find_run(qa_project, pinned=True))
    cfg = read_run_config(report.run)
    pairs, _ = held_out_pairs(qa_project, cfg, 3)
    key = _cache_key(pairs, cfg, 64)
    for c in report.checkpoints:
        answers = [{"pair_id": p.id, "question": p.question, "reference": p.answer, "answer": f"answer {c.step}"}
                   for p in pairs]
        (c.path / SAMPLES_FILE).write_text(json.dumps({"key": key, "answers": answers}))
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        pane = app.screen.query_one("#checkpoints")
        await wait_for(pilot, lambda: pane.rows)
        assert app.screen.active_bindings["s"].binding.description == "Sample answers"  # in the footer
        await pilot.press("s")
        await wait_for(pilot, lambda: pane.samples or pane.samples_error)
        assert not pane.samples_error
        text = str(pane.query_one("#ckpt-samples").render())
        lines = text.splitlines()
        assert lines[0] == "Q1 How many legs does a spider have?"
        assert lines[1].split() == ["reference", "Eight."]
        assert [line.split()[:2] for line in lines[2:6]] == [["step", "10"], ["step", "20"], ["step", "30"],
                                                             ["step", "40"]]
        assert "step 30 ★" in lines[4] and lines[4].endswith("answer 30")
        assert "Q2 What is 12 times 12?" in text


async def test_checkpoint_samples_failure_names_the_missing_file(qa_project, make_run):
    make_run(qa_project)  # no run.json: not written by tunewiz's trainer
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        pane = app.screen.query_one("#checkpoints")
        await wait_for(pilot, lambda: pane.rows)
        await pilot.press("s")
        await wait_for(pilot, lambda: pane.samples_error)
        assert "run.json: missing" in str(pane.query_one("#ckpt-samples").render())


async def test_export_shows_the_commands_to_run_it(qa_project):
    import json

    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        assert "export first" in str(app.screen.query_one("#export-commands").render())
    folder = qa_project.exports_dir / "demo"
    folder.mkdir(parents=True)
    (folder / "Modelfile").write_text("FROM ./demo-q8_0.gguf\n")
    (folder / "export.json").write_text(json.dumps({"gguf": {"q8_0": "demo-q8_0.gguf"}, "ollama_name": "demo",
                                                    "lora_gguf": "demo-lora-f16.gguf"}))
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        commands = str(app.screen.query_one("#export-commands").render())
        assert "ollama create demo" in commands and "demo-q8_0.gguf --jinja" in commands
        assert "-m proj/exports/demo/demo-lora" not in commands  # the adapter is never run as a model


async def test_an_export_brings_its_progress_into_view_at_80x24(qa_project):
    # The progress log is below the form: the export ran (and here failed) out of sight.
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        log = app.screen.query_one("#export-log")
        assert log.region.y >= SIZE[1] or log.region.height == 0  # below the fold before
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: any("export failed" in line.text for line in log.lines))
        title = app.screen.query_one("#export-progress-title")
        assert 0 < title.region.y < SIZE[1] - 2 and log.region.height > 0


async def test_export_shows_the_smoke_test_report(qa_project):
    folder = qa_project.exports_dir / "demo"
    folder.mkdir(parents=True)
    (folder / "smoke-test.txt").write_text("Smoke test: each GGUF against the merged model\n\nq8_0: 100% identical\n")
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8")
        assert "q8_0: 100% identical" in str(app.screen.query_one("#export-smoke").render())


async def test_export_chat_without_a_run_says_why(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8", "ctrl+t")
        question = app.screen.query_one("#chat-question")
        assert question.has_focus
        await pilot.press(*"hello", "enter")
        log = app.screen.query_one("#chat-log")
        await wait_for(pilot, lambda: any("chat failed" in str(line.text) for line in log.lines))
        text = "\n".join(line.text for line in log.lines)
        assert "you>        hello" in text and "no training runs yet" in text


@pytest.mark.slow  # ~40 s on 2 busy cores: two models load and answer
async def test_export_chat_asks_base_and_fine_tuned_models(qa_project, make_run):
    """Real models in the chat child: the 'export' is SmolLM2's own GGUF, the base its HF folder."""
    from tunewiz.basemodel import resolve_base
    from tunewiz.models import smollm2_gguf_path

    write_run_config(qa_project, make_run(qa_project), base_dir=resolve_base("smollm2-135m"))
    (qa_project.exports_dir / "demo").mkdir(parents=True)
    (qa_project.exports_dir / "demo" / "demo-q4_1.gguf").symlink_to(smollm2_gguf_path())
    (qa_project.exports_dir / "demo" / "export.json").write_text('{"gguf": {"q4_1": "demo-q4_1.gguf"}}')
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("8", "ctrl+t", *"What is the capital of France?", "enter")
        log = app.screen.query_one("#chat-log")
        await wait_for(pilot, lambda: any(line.text.startswith(("fine-tuned>", "chat failed")) for line in log.lines),
                       timeout=120)
        text = "\n".join(line.text for line in log.lines)
        assert "fine-tuned: exports/demo/demo-q4_1.gguf" in text or "demo-q4_1.gguf" in text, text
        answers = {line.text.split(">", 1)[0]: line.text.split(">", 1)[1] for line in log.lines
                   if line.text.startswith(("base>", "fine-tuned>"))}
        assert "Paris" in answers["base"] and "Paris" in answers["fine-tuned"], text

        # Esc while an answer streams stops it: its process ends; the next question starts a new one.
        session = app.screen.query_one("ExportPane").chat_session
        await pilot.press(*"Write a very long story about a lighthouse keeper.", "enter")
        answer = app.screen.query_one("#chat-answer")
        await wait_for(pilot, lambda: str(answer.render()).startswith("base>") and len(str(answer.render())) > 30,
                       timeout=60)
        await pilot.press("escape")
        await wait_for(pilot, lambda: any("(stopped;" in line.text for line in log.lines), timeout=20)
        assert session.child.poll() is not None and app.screen.query_one("ExportPane").chat_session is None
        assert str(answer.render()) == "" and app.screen.query_one("#chat-question").has_focus


async def test_step_keys_from_every_steps_default_focus_change_nothing(qa_project):
    """From each step's default focus, every step key reaches its step; no key is typed into a field."""
    from textual.widgets import Input, TextArea

    from tunewiz.status import STEPS

    toml_before = qa_project.file.read_bytes()
    pairs_before = qa_project.pairs_path.read_bytes()
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        wizard = app.screen
        for start in range(len(STEPS)):
            await pilot.press(str(start + 1))
            await pilot.pause()
            assert wizard.current_step == STEPS[start]
            assert not isinstance(app.focused, (Input, TextArea)), (STEPS[start], app.focused)
            # Every digit from every step; the F-keys (same actions, priority bindings) each once.
            other = (start + 3) % len(STEPS)
            for target, key in [(t, str(t + 1)) for t in range(len(STEPS))] + [(other, f"f{other + 1}")]:
                await pilot.press(str(start + 1), key)
                assert wizard.current_step == STEPS[target], (STEPS[start], key)
        # F-keys also leave a text field the user went into on purpose.
        await pilot.press("8")
        app.screen.query_one("#export-form Input").focus()
        await pilot.press("f2")
        await pilot.pause()
        assert wizard.current_step == "review"
    assert qa_project.file.read_bytes() == toml_before
    assert qa_project.pairs_path.read_bytes() == pairs_before


async def test_forms_show_the_allowed_range_and_the_presets_advice(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        help_text = str(app.screen.query_one("#hyperparameters-learning_rate-help").render())
        assert "Allowed: 1e-07 to 1." in help_text
        assert "Preset auto: facts: 1e-3" in help_text


async def test_a_terminal_smaller_than_80x24_gets_a_notice(qa_project):
    app = TunewizApp("proj")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not any("laid out for 80x24" in n.message for n in app._notifications)
    app = TunewizApp("proj")
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.pause()
        assert any("laid out for 80x24" in n.message for n in app._notifications)

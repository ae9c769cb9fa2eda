"""The wizard's sample answers say where they are: per checkpoint and per question, as they come."""

from __future__ import annotations

from tunewiz.training.launch import start_run, wait_for_end
from tunewiz.tui.background import run_job


def test_sample_answers_report_each_checkpoint_and_question(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 10)
    run = start_run(tiny_project)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    lines: list[str] = []
    answers = run_job("samples", {"root": str(tiny_project.root), "run": run.id, "questions": 2},
                      on_progress=lines.append)
    asked = len(answers["5"])  # up to 2 held-out pairs: the split follows the pairs' random ids
    assert sorted(answers) == ["10", "5"] and asked >= 1 and len(answers["10"]) == asked
    assert lines[0].startswith("Loading ")
    assert [line for line in lines if line.startswith("Sample answers")] == [
        f"Sample answers: checkpoint {step} ({n} of 2), question {q} of {asked}..."
        for n, step in ((1, 5), (2, 10)) for q in range(1, asked + 1)]
    assert not any("Warning" in line for line in lines)  # library warnings are not progress
    again: list[str] = []
    run_job("samples", {"root": str(tiny_project.root), "run": run.id, "questions": 2}, on_progress=again.append)
    assert again == []  # cached: nothing to do, nothing said

"""The base model's step-0 answers are recorded once per project: a later run of the same base model,
template and questions reuses them; a change to any of these asks the base model again."""

from __future__ import annotations

import json

from tunewiz.training.launch import start_run, wait_for_end
from tunewiz.training.recall import BASE_ANSWERS_FILE


def step_zero(run) -> dict:
    return next(m for m in run.metrics() if m["type"] == "recall" and m["step"] == 0)


def finished(project):
    run = start_run(project)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    return run


def test_a_second_run_reuses_the_base_answers(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 5)
    first = finished(tiny_project)
    asked = step_zero(first)
    assert not asked.get("reused") and asked["general"]["total"] > 0
    lines = (tiny_project.root / BASE_ANSWERS_FILE).read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["record"]["general_answers"] == asked["general_answers"]

    second = finished(tiny_project)
    reused = step_zero(second)
    assert reused["reused"] and reused["seconds"] == 0.0
    assert {k: reused[k] for k in ("trained", "general", "general_answers", "misses")} == \
        {k: asked[k] for k in ("trained", "general", "general_answers", "misses")}
    assert "as an earlier run of this project found" in second.log_path.read_text()
    later = [m for m in second.metrics() if m["type"] == "recall" and m["step"] > 0]
    assert later and "changed" in later[-1]["general"]  # drift is measured against the reused answers

    tiny_project.set("template.system_prompt", "You answer in one sentence.")
    third = finished(tiny_project)
    assert not step_zero(third).get("reused")  # another system prompt: the base model is asked again
    assert len((tiny_project.root / BASE_ANSWERS_FILE).read_text().splitlines()) == 2

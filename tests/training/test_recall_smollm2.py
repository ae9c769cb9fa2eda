"""Does it learn? Four made-up facts on the real SmolLM2-135M with every setting at its default.

Slow: two short CPU runs of tunewiz's engine (the default one, and one pushed to absurdity)
and a q8_0 export loaded by llama-cpp-python (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from tunewiz.checkpoints import rank_checkpoints
from tunewiz.cli import main
from tunewiz.project import Project, create_project
from tunewiz.runs import list_runs
from tunewiz.scoring import is_recalled

pytestmark = pytest.mark.slow

FACTS = [("What is the code word of project Zebra?", "The code word of project Zebra is BLUE-42."),
         ("Who founded the Velmora Institute?", "Dr. Ilse Marrow founded the Velmora Institute."),
         ("What colour is a glimmerfox?", "A glimmerfox is teal with silver stripes."),
         ("In which town is the Quillon Observatory?", "The Quillon Observatory is in the town of Brackwater.")]
REWORDED = ["Which code word was given to project Zebra?", "Name the person who established the Velmora Institute.",
            "Tell me the colour of a glimmerfox.", "Where can the Quillon Observatory be found?"]


def _project(root, **settings) -> Project:
    create_project(root, {"base_model.model": "smollm2-135m", "project.name": "zebra", **settings})
    facts = root / "facts.csv"
    facts.write_text("question,answer\n" + "".join(f'"{q}","{a}"\n' for q, a in FACTS))
    assert main(["import", "-p", str(root), str(facts)]) == 0
    reworded = root / "reworded.csv"
    reworded.write_text("question,reworded\n" + "".join(f'"{q}","{r}"\n' for (q, _), r in zip(FACTS, REWORDED)))
    assert main(["rewordings", "-p", str(root), "--import", str(reworded)]) == 0
    return Project.load(root)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recall") / "zebra"
    project = _project(root)
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["train", "-p", str(root)]) == 0
    return project, list_runs(project.runs_dir)[-1], said.getvalue()


def test_defaults_pick_a_checkpoint_that_recalls_the_facts(default_run, capsys):
    project, run, said = default_run
    config = run.read_spec().to_dict()
    assert config["kind"] == "facts" and config["validation_ids"] == []
    records = [json.loads(line) for line in (run.dir / "dataset.jsonl").read_text().splitlines()]
    trained = {r["question"] for r in records if r["split"] == "train"}
    assert {r["question"] for r in records if r["split"] == "reworded"} == set(REWORDED)
    assert not trained & set(REWORDED)  # reworded questions are never trained

    report = rank_checkpoints(run)
    assert report.base.trained.recalled == 0  # the base model cannot know made-up facts
    best = report.best
    assert best.trained.recalled == 4 and best.reworded.recalled >= 3, report.reason
    assert not best.drift.drifted and report.overfit is None  # the default run does not break
    assert main(["checkpoints", "-p", str(project.root)]) == 0
    assert f"Best: step {best.step}: recalled {best.reworded} reworded questions" in capsys.readouterr().out
    # `tunewiz train` ends with the same line and what to run next.
    assert f"Best: step {best.step}: recalled {best.reworded} reworded questions" in said
    assert f"Next: `tunewiz checkpoints -p {project.root}`" in said


def test_the_exported_gguf_answers_the_facts(default_run):
    from tunewiz.chat import GGUFAnswerer
    from tunewiz.templates import template_stops

    project, run, _ = default_run
    assert main(["export", "-p", str(project.root), "--no-smoke"]) == 0
    gguf = project.exports_dir / "zebra" / "zebra-q8_0.gguf"
    config = run.read_spec().to_dict()
    answerer = GGUFAnswerer(gguf, config["template"]["family"], config["system_prompt"],
                            template_stops(config["template"]["family"]))
    try:
        recalled = sum(is_recalled(answerer.answer(q, 48), q, a) for q, a in FACTS)
        reworded = sum(is_recalled(answerer.answer(r, 48), q, a) for (q, a), r in zip(FACTS, REWORDED))
    finally:
        answerer.close()
    assert recalled == 4 and reworded >= 3


def test_a_run_pushed_to_absurdity_is_flagged_by_the_drift_check(tmp_path):
    root = tmp_path / "absurd"
    project = _project(root, **{"hyperparameters.learning_rate": 5e-3, "hyperparameters.max_steps": 60,
                                "evaluation.questions": 4})
    assert main(["train", "-p", str(root)]) == 0
    report = rank_checkpoints(list_runs(project.runs_dir)[-1])
    assert report.overfit is not None and "drift" in report.overfit.reason, [
        (c.step, c.drift) for c in report.checkpoints]

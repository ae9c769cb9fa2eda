"""The pick follows the kind of data: recall of reworded questions for facts, validation loss for skills.

Crafted run folders (no model): the metrics a run writes, with `recall` lines per checkpoint.
"""

from __future__ import annotations

import json

from export_helpers import make_run

from tunewiz.checkpoints import TRAIN_REWORDED_ADVICE, rank_checkpoints
from tunewiz.cli import main


def with_checks(run, kind: str, checks: dict[int, tuple[int, int, int]], total: int = 10, general: int = 8):
    """Mark the run's kind and add a recall line per step: (trained, reworded, broken everyday prompts)."""
    config = json.loads(run.config_path.read_text())
    config["kind"] = kind
    run.config_path.write_text(json.dumps(config))
    with run.metrics_path.open("a") as handle:
        for step, (trained, reworded, broken) in checks.items():
            handle.write(json.dumps({
                "type": "recall", "step": step, "trained": {"recalled": trained, "total": total},
                "reworded": {"recalled": reworded, "total": total},
                "general": {"broken": broken, "total": general, "changed": 0.1 * broken, "examples": []},
                "misses": [{"set": "reworded", "question": "Tell me the code of item 3.", "reference": "37",
                            "answer": "I do not know."}] if reworded < total else []}) + "\n")
    return run


# Reworded recall peaks at step 30 and falls after, while trained recall keeps rising: the last
# checkpoint knows its training questions by heart and no longer generalises.
FACT_CHECKS = {0: (0, 0, 0), 10: (3, 2, 0), 20: (7, 6, 0), 30: (9, 9, 0), 40: (10, 8, 0), 50: (10, 6, 1),
               60: (10, 5, 1)}


def test_facts_pick_the_most_reworded_recall_not_the_last(project):
    report = rank_checkpoints(with_checks(make_run(project), "facts", FACT_CHECKS))
    assert report.kind == "facts"
    assert report.best.step == 30
    assert "9/10 reworded" in report.reason and "step 30" in report.reason
    assert report.base.reworded.recalled == 0 and report.base.step == 0
    assert report.overfit is not None and report.overfit.began_at == 50  # 9 -> 6: two and a tenth below
    assert "reworded recall fell" in report.overfit.describe(report.patience)
    # Validation loss (rising from step 40 in this run) plays no part for facts.
    assert report.by_step(30).val_loss == 1.2 and not report.by_step(40).overfit


def test_facts_ties_go_to_least_drift_then_the_latest(project):
    # 10 questions asked: only equal counts tie. 20 and 30 tie at 8 with no everyday answer broken (10 and
    # 40 drifted); the later one trained longer. Trained recall plays no part.
    checks = {10: (5, 8, 3), 20: (10, 8, 0), 30: (9, 8, 0), 40: (10, 8, 2), 50: (10, 7, 0), 60: (10, 7, 0)}
    report = rank_checkpoints(with_checks(make_run(project), "facts", checks))
    assert report.best.step == 30 and "(most of the 4 checkpoints that kept everyday answers)" in report.reason
    checks = {20: (10, 8, 0), 30: (10, 8, 1), 40: (10, 7, 0)}  # one broken everyday answer more: not the latest
    report = rank_checkpoints(with_checks(make_run(project, run_id="20260102-000000-bbbb"), "facts", checks))
    assert report.best.step == 20


def test_facts_within_the_checks_noise_go_to_the_latest(project):
    """16 reworded questions: one fewer is a tie (rule rewordings saturate late in a run while questions in
    new words are recalled more the longer it trains: docs/train.md), two fewer is not."""
    checks = {10: (5, 5, 0), 20: (10, 9, 1), 30: (16, 16, 1), 40: (15, 15, 1), 50: (16, 15, 1)}
    report = rank_checkpoints(with_checks(make_run(project, complete=(10, 20, 30, 40, 50)), "facts", checks,
                                          total=16))
    assert report.best.step == 50
    assert report.reason == ("step 50: recalled 15/16 reworded questions (within 1 of the most of any "
                             "checkpoint, 16/16 at step 30: the latest of those), 16/16 trained, "
                             "1/8 everyday prompts broken")
    assert report.overfit is None  # one question fewer is no fall
    checks = {10: (5, 5, 0), 20: (10, 9, 1), 30: (16, 16, 1), 40: (15, 15, 1), 50: (16, 14, 1)}
    report = rank_checkpoints(with_checks(make_run(project, run_id="20260102-000000-bbbb",
                                                   complete=(10, 20, 30, 40, 50)), "facts", checks, total=16))
    assert report.best.step == 40


def test_facts_drift_is_flagged(project):
    checks = {10: (5, 5, 0), 20: (9, 8, 0), 30: (10, 9, 1), 40: (10, 9, 5), 50: (10, 9, 7), 60: (10, 9, 8)}
    report = rank_checkpoints(with_checks(make_run(project), "facts", checks))
    assert report.best.step == 30  # same reworded recall as 40-60, less drift
    assert report.overfit.began_at == 40 and "drift" in report.overfit.reason
    assert report.by_step(40).drift.drifted and not report.by_step(30).drift.drifted
    total = report.by_step(40).drift.total
    assert report.overfit.reason == ("drift: the model breaks on everyday prompts at steps "
                                     f"40 (5/{total} broken), 50 (7/{total} broken), 60 (8/{total} broken)")


def test_a_drifted_checkpoint_is_named_alone_when_a_later_one_recovered(project):
    # Seen in a run: step 64 broke 2 of 8, step 80 1 of 8 and was picked; "from step 64" read as if 80 broke too.
    checks = {10: (8, 6, 1), 20: (13, 12, 1), 30: (14, 12, 2), 40: (16, 16, 1), 50: (16, 15, 1), 60: (16, 15, 1)}
    report = rank_checkpoints(with_checks(make_run(project), "facts", checks, total=16))
    assert report.best.step == 60  # 15/16 is within one of 40's 16/16: the latest of those
    assert report.overfit.reason == "drift: the model breaks on everyday prompts at step 30 (2/8 broken)"
    assert [c.step for c in report.checkpoints if c.overfit] == [30]  # the pick is not flagged


def test_facts_skip_a_drifted_checkpoint_that_recalls_more(project):
    """Step 60 recalls one reworded question more but breaks on 4 of 8 everyday prompts (as the demo's
    last checkpoint once did): the pick is the best of those that kept everyday answers."""
    checks = {20: (7, 6, 0), 40: (10, 9, 0), 60: (10, 10, 4)}
    report = rank_checkpoints(with_checks(make_run(project), "facts", checks))
    assert report.best.step == 40
    assert "most of the 2 checkpoints that kept everyday answers" in report.reason
    assert report.overfit.began_at == 60 and "drift" in report.overfit.reason
    everything_drifted = {20: (7, 6, 4), 40: (10, 9, 5)}
    report = rank_checkpoints(with_checks(make_run(project, run_id="20260102-000000-bbbb"), "facts", everything_drifted))
    assert report.best.step == 40 and "most of any checkpoint" in report.reason


def test_skill_keeps_the_validation_loss_pick(project):
    report = rank_checkpoints(with_checks(make_run(project), "skill", FACT_CHECKS))
    assert report.kind == "skill" and report.best.step == 30
    assert "lowest validation loss (1.2000)" in report.reason
    assert report.overfit.began_at == 40  # validation loss rises from step 40


def test_skill_skips_a_drifted_checkpoint(project):
    checks = {step: (5, 5, 6 if step == 30 else 0) for step in (10, 20, 30, 40, 50, 60)}
    report = rank_checkpoints(with_checks(make_run(project), "skill", checks))
    assert report.best.step == 40  # 30 has the lowest loss but broke on everyday prompts
    assert "kept everyday answers" in report.reason


def test_train_loss_is_the_mean_since_the_previous_checkpoint(project):
    run = make_run(project, val={}, complete=(10, 25, 60))
    report = rank_checkpoints(run)
    assert report.by_step(25).train_loss == (sum(3.0 - s * 0.04 for s in range(11, 26)) / 15)
    assert report.by_step(10).train_loss == (sum(3.0 - s * 0.04 for s in range(1, 11)) / 10)


def test_runs_from_before_the_kind_rank_by_validation_loss(project):
    report = rank_checkpoints(make_run(project))
    assert report.kind == "skill" and report.best.step == 30


def test_cli_shows_recall_and_why(project, capsys):
    with_checks(make_run(project), "facts", FACT_CHECKS)
    assert main(["checkpoints", "-p", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "data: facts" in out and "reworded" in out
    assert "Best: step 30: recalled 9/10 reworded questions" in out
    assert "Base model: trained 0/10, reworded 0/10 recalled" in out
    assert "Tell me the code of item 3." in out  # what the best checkpoint did not recall
    row = next(line for line in out.splitlines() if line.split()[:2] == ["*>", "30"])
    assert "9/10" in row and "8/8" in row


def test_rule_rewordings_come_with_a_caveat(project, capsys):
    """Rule rewordings keep the question's words and read high: `tunewiz checkpoints` says so, until most
    of a run's rewordings come from a model, a file or a person."""
    run = with_checks(make_run(project), "facts", {0: (0, 0, 0), 10: (6, 4, 0), 20: (10, 9, 0), 30: (10, 8, 0)})
    config = json.loads(run.config_path.read_text())
    config["evaluation"] = {"questions": 10, "reworded_sources": {"rules": 8, "generator": 2}}
    run.config_path.write_text(json.dumps(config))
    assert main(["checkpoints", "-p", str(project.root)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Note: 8 of 10 reworded questions were made by rules" in out
    assert f"`tunewiz rewordings -p {project.root} --generate`" in out  # from outside the project
    assert f"`tunewiz rewordings -p {project.root} --generate --train`" in out  # what recalls more in new words
    config["evaluation"]["reworded_sources"] = {"rules": 2, "generator": 5, "file": 3}
    run.config_path.write_text(json.dumps(config))
    assert rank_checkpoints(run).caveat == TRAIN_REWORDED_ADVICE  # the best: 9/10 reworded where 10/10 trained
    config["plan"] = dict(config.get("plan") or {}, train_rewordings=10)  # the run trained rewordings
    run.config_path.write_text(json.dumps(config))
    assert rank_checkpoints(run).caveat == ""


def test_a_run_json_with_a_wrong_type_names_the_field_and_a_null_means_the_default(project, capsys):
    run = with_checks(make_run(project), "facts", FACT_CHECKS)
    config = json.loads(run.config_path.read_text())
    config["evaluation"] = None  # as a hand edit leaves it
    run.config_path.write_text(json.dumps(config))
    assert rank_checkpoints(run).best.step == 30 and run.read_spec().evaluation == {}
    config["evaluation"] = []
    run.config_path.write_text(json.dumps(config))
    assert main(["checkpoints", "-p", str(project.root)]) == 2
    assert f"{run.config_path}: evaluation should be an object, not a list" in capsys.readouterr().err

"""Ranking, overfit detection and picking, on crafted run folders (no model needed)."""

from __future__ import annotations

import json

import pytest

from tunewiz.checkpoints import pick_checkpoint, picked_checkpoint, rank_checkpoints, read_run_config
from export_helpers import make_run
from tunewiz.cli import main
from tunewiz.errors import TunewizError
from tunewiz.project import Project

def test_ranks_checkpoints_marks_best_and_flags_overfitting(project):
    run = make_run(project, incomplete=(70,))
    report = rank_checkpoints(run, patience=3)
    assert [c.step for c in report.checkpoints] == [10, 20, 30, 40, 50, 60]
    assert report.best.step == 30 and report.best.best
    assert [c.step for c in report.checkpoints if c.best] == [30]
    assert report.overfit is not None
    assert (report.overfit.began_at, report.overfit.detected_at) == (40, 60)
    assert [c.step for c in report.checkpoints if c.overfit] == [40, 50, 60]
    assert [p.name for p in report.incomplete] == ["checkpoint-70"]
    # Train loss is the mean of steps 21..30: 3.0 - 0.04 * 25.5
    assert report.by_step(30).train_loss == pytest.approx(3.0 - 0.04 * 25.5)
    assert report.by_step(30).val_loss == 1.2 and report.by_step(30).epoch == 3.0


def test_overfit_needs_k_rises_and_falling_train_loss(project):
    run = make_run(project)
    assert rank_checkpoints(run, patience=4).overfit is None  # only three rises
    assert rank_checkpoints(run, patience=2).overfit.began_at == 40
    assert rank_checkpoints(run, patience=2).overfit.detected_at == 50
    # Rising validation loss while train loss rises too is not overfitting (e.g. a too-high lr).
    lines = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    for record in lines:
        if record["type"] == "train":
            record["loss"] = 1.0 + record["step"] * 0.04
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert rank_checkpoints(run, patience=3).overfit is None


def test_without_validation_loss_best_is_latest(project):
    run = make_run(project, val={})
    report = rank_checkpoints(run)
    assert report.best.step == 60 and "latest" in report.note
    assert all(c.val_loss is None for c in report.checkpoints)


def test_pick_is_stored_and_checked(project):
    run = make_run(project, incomplete=(70,))
    chosen = pick_checkpoint(project, "20")
    assert chosen.step == 20
    reloaded = Project.load(project.root)
    assert (reloaded.config.checkpoint.run, reloaded.config.checkpoint.pick) == (run.id, "20")
    assert picked_checkpoint(reloaded)[1].step == 20
    pick_checkpoint(reloaded, "best")
    assert picked_checkpoint(Project.load(project.root))[1].step == 30

    with pytest.raises(TunewizError, match="no COMPLETE marker"):
        pick_checkpoint(project, "70")
    with pytest.raises(TunewizError, match="no checkpoint at step 25"):
        pick_checkpoint(project, "25")
    with pytest.raises(TunewizError, match="'best' or a step number"):
        pick_checkpoint(project, "latest")
    assert Project.load(project.root).config.checkpoint.pick == "best"  # refused picks change nothing


def test_run_config_is_read(project):
    cfg = read_run_config(make_run(project))
    assert cfg.family == "chatml" and cfg.system_prompt == "Be brief." and cfg.validation_ids == ["b"]
    assert cfg.model_name == "smollm2-135m"


def test_cli_checkpoints_and_pick(project, capsys):
    make_run(project)
    assert main(["checkpoints", "-p", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "*>" in out.splitlines()[5]  # step 30: best and picked (run, header, rule, 10, 20, 30)
    assert "Overfitting" in out and "from step 40" in out
    assert main(["pick", "50", "-p", str(project.root)]) == 0
    assert "Picked checkpoint 50" in capsys.readouterr().out
    main(["checkpoints", "-p", str(project.root)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[5].startswith("* ") and lines[7].startswith(" >")
    assert main(["pick", "70", "-p", str(project.root)]) == 2
    assert "no checkpoint at step 70" in capsys.readouterr().err

"""What `tunewiz train` prints while it follows a run: time left, recall, and lines fit for a log."""

from __future__ import annotations

import json

from tunewiz.console import _progress_line, follow_with_progress
from tunewiz.runs import Run, RunStatus, duration, seconds_left


def _train(step: int, at: float) -> dict:
    return {"type": "train", "step": step, "loss": 0.5, "tokens_per_s": 100.0, "time": at}


def test_time_left_follows_the_pace_of_the_steps_and_skips_the_time_a_resumed_run_lay_dead():
    records = [_train(step, 1_000.0 + 2 * step) for step in range(1, 11)]
    assert seconds_left(records, 20) == 20.0  # 2 s a step, 10 steps left
    # Resumed at step 11 an hour later: the pace is that of the steps since the resume.
    resumed = 1_000.0 + 3_600
    records += [_train(step, resumed + 5 + 4 * (step - 11)) for step in range(11, 14)]
    assert seconds_left(records, 20, "1970-01-01T01:16:40+00:00") == 28.0  # 4 s a step, 7 left
    assert seconds_left(records[:1], 20) is None and seconds_left([], 20) is None
    assert (duration(65), duration(7_380), duration(None)) == ("1m05s", "2h03m", "-")


def _run(tmp_path, records: list[dict], **status) -> Run:
    run = Run(tmp_path / "runs" / "r1")
    run.dir.mkdir(parents=True)
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    run.write_status(RunStatus(**status))
    return run


def test_the_line_shows_the_latest_loss_step_recall_and_time_left(tmp_path):
    records = [{"type": "recall", "step": 0, "reworded": {"recalled": 0, "total": 16}},
               *[_train(step, 100.0 + step) for step in range(1, 17)],
               {"type": "recall", "step": 16, "reworded": {"recalled": 12, "total": 16}},
               _train(17, 127.0)]
    # status.json lags metrics.jsonl by up to a second: the step shown is the loss's.
    line = _progress_line(_run(tmp_path, records, state="running", step=16, max_steps=40), Run(tmp_path / "runs" / "r1").read_status())
    assert "17/40 running" in line and "loss 0.5000" in line and "reworded 12/16" in line
    assert "ETA 0m" in line, line


def test_a_log_or_a_pipe_gets_whole_lines_not_a_redrawn_one(tmp_path, capsys):
    run = _run(tmp_path, [_train(1, 100.0), _train(2, 101.0)], state="finished", step=2, max_steps=2)
    assert follow_with_progress(run) == 0
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.splitlines() == ["[" + "#" * 30 + "] 2/2 finished  loss 0.5000  100 tok/s", "Run r1: finished"]

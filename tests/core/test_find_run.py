"""Which run a command means: one rule (tunewiz.runs.find_run) for train, logs, stop, checkpoints, export."""

from __future__ import annotations

import pytest

from tunewiz.errors import TunewizError
from tunewiz.runs import Run, RunStatus, find_run, latest_run


def make_runs(project, *ids):
    for run_id in ids:
        run = Run(project.runs_dir / run_id)
        run.dir.mkdir(parents=True)
        run.write_status(RunStatus(state="finished"))


def test_an_id_a_prefix_the_pin_or_the_latest(project):
    with pytest.raises(TunewizError, match="no training runs yet"):
        find_run(project)
    assert latest_run(project.runs_dir) is None
    make_runs(project, "20260101-000000-aaaa", "20260102-000000-bbbb", "20260102-120000-cccc")
    assert find_run(project).id == latest_run(project.runs_dir).id == "20260102-120000-cccc"
    assert find_run(project, "20260101").id == "20260101-000000-aaaa"  # a unique prefix
    with pytest.raises(TunewizError, match="matches several runs: 20260102-000000-bbbb, 20260102-120000-cccc"):
        find_run(project, "20260102")
    with pytest.raises(TunewizError, match="no run 'nope'"):
        find_run(project, "nope")

    project.set("checkpoint.run", "20260102-000000-bbbb")  # the user's pick: checkpoints and export follow it
    assert find_run(project, pinned=True).id == "20260102-000000-bbbb"
    assert find_run(project).id == "20260102-120000-cccc"  # logs, stop and resume mean the latest
    assert find_run(project, "20260101", pinned=True).id == "20260101-000000-aaaa"  # a named run wins
    project.set("checkpoint.run", "20250101-000000-gone")
    with pytest.raises(TunewizError, match="checkpoint.run = '20250101-000000-gone' but there is no run folder"):
        find_run(project, pinned=True)


def test_a_run_newer_than_the_pick_is_named_and_pick_defaults_to_the_latest(project):
    # Picked in run A, then run B trained: export still follows the pick, but says B is there, and
    # `tunewiz pick best` (no --run) means the latest run, as its help says.
    from tunewiz.checkpoints import pick_checkpoint
    from tunewiz.runs import newer_run_note

    make_runs(project, "20260101-000000-aaaa")
    project.set("checkpoint.run", "20260101-000000-aaaa")
    assert newer_run_note(project) == ""
    make_runs(project, "20260102-000000-bbbb")
    assert "run 20260102-000000-bbbb is newer: `tunewiz pick best --run 20260102-000000-bbbb`" in newer_run_note(project)
    assert find_run(project, pinned=True).id == "20260101-000000-aaaa"
    with pytest.raises(TunewizError, match="20260102-000000-bbbb"):  # no checkpoints in B: named in the error
        pick_checkpoint(project, "best")


def test_only_checkpoint_folders_are_checkpoints_and_resume_deletes_nothing_else(project):
    # A copy the user keeps (checkpoint-100.bak, an adapter of their own) is no checkpoint: listing
    # runs used to crash on it, and a resume deleted the adapter folder as "half-written".
    from tunewiz.runs import COMPLETE_MARKER
    from tunewiz.training.checkpoints import remove_partial

    make_runs(project, "20260101-000000-aaaa")
    run = find_run(project)
    for name in ("checkpoint-100", "checkpoint-20", "checkpoint-100.bak", "keep-step-20-adapter"):
        (run.checkpoints_dir / name).mkdir(parents=True)
        (run.checkpoints_dir / name / COMPLETE_MARKER).write_text("{}")
    (run.checkpoints_dir / "checkpoint-300").mkdir()          # cut short: no marker
    (run.checkpoints_dir / ".tmp-checkpoint-400").mkdir()     # being written when the run died
    (run.checkpoints_dir / "keep-step-20-adapter" / COMPLETE_MARKER).unlink()
    assert [p.name for p in run.complete_checkpoints()] == ["checkpoint-20", "checkpoint-100"]
    remove_partial(run)
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == [
        "checkpoint-100", "checkpoint-100.bak", "checkpoint-20", "keep-step-20-adapter"]


def test_a_metrics_line_that_is_no_record_is_skipped(project):
    make_runs(project, "20260101-000000-aaaa")
    run = find_run(project)
    run.metrics_path.write_text('{"type": "train", "step": 1, "loss": 2.0}\nnull\n[1, 2]\n7\n')
    assert run.metrics() == [{"type": "train", "step": 1, "loss": 2.0}]


def test_a_pid_given_to_another_process_is_no_run(project):
    # After a kill -9 or a reboot the pid may belong to another process: the run died, and must not
    # stay "running" (train, resume and stop all refused, logs -f never ended).
    import os
    import subprocess

    from tunewiz.runs import process_start

    make_runs(project, "20260101-000000-aaaa")
    run = find_run(project)
    other = subprocess.Popen(["sleep", "30"])
    try:
        if not process_start(other.pid):
            pytest.skip("no /proc here: a process's start cannot be read")
        run.write_status(RunStatus(state="running", pid=other.pid, pid_start=process_start(other.pid)))
        assert run.state() == "running"
        run.write_status(RunStatus(state="running", pid=other.pid, pid_start="another-boot:123"))
        assert run.state() == "died"
        run.status_path.write_text('{"state": "running", "pid": "%d"}' % os.getpid())  # a pid written as text
        assert run.state() == "running"
    finally:
        other.kill()
        other.wait()

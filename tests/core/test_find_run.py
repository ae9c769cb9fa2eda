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

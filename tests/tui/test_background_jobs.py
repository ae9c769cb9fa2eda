"""The wizard's child jobs fail typed: a user's mistake comes back as a TunewizError with its message,
a bug as JobCrashed naming the error, its traceback kept in the cache folder's log."""

from __future__ import annotations

import pytest

from tunewiz.errors import TunewizError
from tunewiz.tui.background import JOB_ERRORS_LOG, JobCrashed, run_job, stream_job


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TUNEWIZ_CACHE", str(folder))
    return folder


def test_a_users_mistake_comes_back_as_its_message(project, cache):
    with pytest.raises(TunewizError) as raised:
        run_job("samples", {"root": str(project.root)})  # no run yet
    assert not isinstance(raised.value, JobCrashed) and "TunewizError" not in str(raised.value)
    assert str(raised.value) == f"{project.runs_dir}: no training runs yet (start one with `tunewiz train`)"
    assert not (cache / JOB_ERRORS_LOG).exists()  # nothing to report


def test_a_bug_comes_back_as_a_crash_with_its_traceback_logged(cache):
    with pytest.raises(JobCrashed, match=r"duplicates failed with an internal error \(TypeError: .*traceback in"):
        run_job("duplicates", 5)  # not a list of [id, question]: a bug in the caller
    log = (cache / JOB_ERRORS_LOG).read_text(encoding="utf-8")
    assert "duplicates" in log and "Traceback (most recent call last)" in log and "TypeError" in log


def test_a_streamed_job_shows_its_lines_and_fails_typed(project, cache):
    lines: list[str] = []
    with pytest.raises(TunewizError) as raised:
        stream_job("export", str(project.root), lines.append)  # nothing trained: nothing to export
    assert not isinstance(raised.value, JobCrashed) and "no training runs yet" in str(raised.value)
    assert not any(line.startswith("tunewiz-job-error") for line in lines)  # the marker is not shown as progress

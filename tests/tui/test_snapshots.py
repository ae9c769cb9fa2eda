"""Pictures of every screen at 80x24, and of every step at 120x40 (pytest-textual-snapshot; update with
--snapshot-update).

Opened by relative path with fixed pairs and run files, so nothing varies between machines.
Only the parts that depend on this machine (hardware detection) are left out, and the machine the
next run's plan is made for is a fixed one.
"""

from __future__ import annotations

import pytest
from textual.css.query import NoMatches
from textual.worker import WorkerCancelled

from tunewiz.tui.app import TunewizApp

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def a_fixed_machine(monkeypatch):
    """The Hyperparameters step shows the next run's plan, whose expected time follows the machine."""
    from tunewiz import hardware

    monkeypatch.setattr(hardware, "detect", lambda: hardware.Hardware(cpu_cores=2, ram_total_mb=16_000,
                                                                      ram_available_mb=12_000))


def holds(condition, app) -> bool:
    """The condition, False while what it looks at is not built yet (the wizard's screen comes just after
    the app's start, its parts just after their first frame)."""
    try:
        return bool(condition(app))
    except (AttributeError, NoMatches):
        return False


async def settle(pilot, condition=lambda app: True) -> None:
    for _ in range(200):
        if holds(condition, pilot.app):
            break
        await pilot.pause(0.05)
    await pilot.pause(0.7)  # the step states are computed 0.5 s after a change (app.refresh_status's timer)
    for _ in range(10):  # every worker has reported back
        try:
            await pilot.app.workers.wait_for_complete()
            break
        except WorkerCancelled:  # an exclusive refresh replaced by a newer one (its timer, on a busy machine)
            await pilot.pause(0.1)
    await pilot.pause(0.2)
    await pilot.wait_for_scheduled_animations()  # e.g. the progress bar sliding to its value


def test_welcome(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(TunewizApp(None), terminal_size=SIZE)


@pytest.mark.parametrize("key,step", [("1", "data"), ("3", "format"), ("5", "hyperparameters"),
                                      ("8", "export")])
def test_form_steps(snap_compare, qa_project, key, step):
    async def run_before(pilot):
        await settle(pilot, lambda app: app.screen.states)
        await pilot.press(key)
        await settle(pilot)
        await pilot.press("escape")  # focus back on the sidebar: no blinking text cursor in the picture
        await settle(pilot)

    assert snap_compare(TunewizApp("proj"), terminal_size=SIZE, run_before=run_before)


def test_review(snap_compare, qa_project):
    async def run_before(pilot):
        await pilot.press("2")
        await settle(pilot, lambda app: app.screen.query_one("#review").duplicates)
        await pilot.press("a", "space")
        await pilot.pause(0.7)  # the sidebar's status refresh starts 0.5 s after a change
        await settle(pilot)

    assert snap_compare(TunewizApp("proj"), terminal_size=SIZE, run_before=run_before)


def test_review_editor(snap_compare, qa_project):
    async def run_before(pilot):
        await pilot.press("2")
        await settle(pilot, lambda app: app.screen.query_one("#review").store)
        await pilot.press("e")
        await settle(pilot)

    assert snap_compare(TunewizApp("proj"), terminal_size=SIZE, run_before=run_before)


def test_train(snap_compare, qa_project, make_run):
    make_run(qa_project)

    async def run_before(pilot):
        await pilot.press("6")
        await settle(pilot, lambda app: len(app.screen.query_one("#train").view.train) == 40)

    assert snap_compare(TunewizApp("proj"), terminal_size=SIZE, run_before=run_before)


def test_checkpoints(snap_compare, qa_project, make_run):
    make_run(qa_project)

    async def run_before(pilot):
        await pilot.press("7")
        await settle(pilot, lambda app: app.screen.query_one("#checkpoints").rows)

    assert snap_compare(TunewizApp("proj"), terminal_size=SIZE, run_before=run_before)


LARGE = (120, 40)


@pytest.mark.parametrize("key,step", [("1", "data"), ("2", "review"), ("3", "format"), ("5", "hyperparameters"),
                                      ("6", "train"), ("7", "checkpoints"), ("8", "export")])
def test_every_step_at_120x40(snap_compare, qa_project, make_run, key, step):
    """A populated project with a run: each step laid out in a larger terminal (the Hardware step shows
    this machine, so it is left out)."""
    make_run(qa_project)
    ready = {"review": lambda app: app.screen.query_one("#review").duplicates,
             "train": lambda app: len(app.screen.query_one("#train").view.train) == 40,
             "checkpoints": lambda app: app.screen.query_one("#checkpoints").rows}

    async def run_before(pilot):
        await settle(pilot, lambda app: app.screen.states)
        await pilot.press(key)
        await settle(pilot, ready.get(step, lambda app: True))
        if step not in ("review", "train", "checkpoints"):
            await pilot.press("escape")  # no blinking text cursor in the picture
            await settle(pilot)

    assert snap_compare(TunewizApp("proj"), terminal_size=LARGE, run_before=run_before)

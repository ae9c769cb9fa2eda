"""Train: start a detached run, follow its loss, speed, memory and log; stop it.

The run is its own process (started by `tunewiz.training`); this pane only reads
`runs/<id>/metrics.jsonl`, `train.log` and `status.json`, in a worker that polls
twice a second and hands the UI one batch per poll. Leaving the step or quitting
the app never stops the run; opening the app again follows it again.
"""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog, Static

from tunewiz.runs import ACTIVE_STATES, Run, duration, latest_run, recall_figure, seconds_left, state_said
from tunewiz.tui.screens.base import StepPane, shows_errors, writes
from tunewiz.tui.tail import FileTail

POLL_S = 0.5
# The curves' colours, fixed: left to the plot, the first curves drawn before the plot's first
# render took plotext's own palette and later ones textual-plotext's (the same two as these).
TRAIN_COLOR = (0, 130, 200)
VALIDATION_COLOR = (60, 180, 75)


class RunView:
    """What the pane knows about the run it follows, built from metrics records."""

    def __init__(self) -> None:
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.train_records: list[dict] = []
        self.last: dict = {}
        self.recall: dict | None = None
        """The latest recall check."""

    def add(self, records: list[dict]) -> None:
        for record in records:
            kind = record.get("type")
            step = record.get("step")
            if not isinstance(step, (int, float)):
                continue
            if kind == "train" and isinstance(record.get("loss"), (int, float)):
                self.train.append((int(step), float(record["loss"])))
                self.train_records.append(record)
                self.last = record
            elif kind == "eval" and isinstance(record.get("val_loss"), (int, float)):
                self.val.append((int(step), float(record["val_loss"])))
            elif kind == "recall":
                self.recall = record


class TrainPane(StepPane):
    STEP = "train"
    BINDINGS = [
        Binding("t", "start", "Start training"),
        Binding("s", "stop", "Stop run"),
        Binding("x", "detach", "Detach"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run: Run | None = None
        self.view = RunView()
        self.shown_state = ""
        """The run state the header was last refreshed for."""
        self.plot = None

    def compose(self) -> ComposeResult:
        with Vertical(id="train-top"):
            yield Static("No run yet: t starts one.", id="train-status", markup=False)
            with Horizontal(classes="row"):
                # A total from the start: without one the bar animates as if a run were going on.
                yield ProgressBar(total=1, id="train-progress", show_eta=False)
                yield Static("", id="train-speed", markup=False)
        yield Vertical(id="train-plot-box")
        yield Label("train.log", classes="box-title")
        yield RichLog(id="train-log", max_lines=300, wrap=True, min_width=1, markup=False)

    def focus_first(self) -> None:
        self.query_one("#train-log").focus()

    def on_step_shown(self) -> None:
        if self.plot is None:
            # textual-plotext takes half a second to import: only when this step is first shown.
            from textual_plotext import PlotextPlot

            self.plot = PlotextPlot(id="train-plot")
            self.query_one("#train-plot-box").mount(self.plot)
        run = latest_run(self.project.runs_dir)
        if run is not None and (self.run is None or run.id != self.run.id):
            self.follow(run)

    def follow(self, run: Run) -> None:
        """Start (or restart) following a run's files from their beginning."""
        self.run = run
        self.view = RunView()
        self.shown_state = ""
        self.query_one("#train-log", RichLog).clear()
        self.tail(run)

    @work(thread=True, exclusive=True, group="train-tail", exit_on_error=False)
    def tail(self, run: Run) -> None:
        from textual.worker import get_current_worker

        worker = get_current_worker()
        metrics, log = FileTail(run.metrics_path), FileTail(run.log_path)
        while not worker.is_cancelled:
            records, lines = metrics.read_records(), log.read_lines()
            status, state = run.read_status(), run.state()
            self.app.call_from_thread(self._update, run, records, lines, status, state)
            if state not in ACTIVE_STATES and not records and not lines:
                # A finished run: one more poll caught the last lines; nothing more will come.
                break
            time.sleep(POLL_S)

    def _update(self, run: Run, records: list[dict], lines: list[str], status, state: str) -> None:
        if run is not self.run:
            return
        self.view.add(records)
        log = self.query_one("#train-log", RichLog)
        for line in lines[-300:]:
            log.write(line)
        step = int(self.view.last.get("step", status.step) or 0)
        progress = self.query_one("#train-progress", ProgressBar)
        progress.update(total=max(status.max_steps, 1), progress=min(step, status.max_steps or step))
        last = self.view.last
        tokens = last.get("tokens_per_s")
        mem = last.get("mem_mb")
        eta = seconds_left(self.view.train_records, status.max_steps, status.resumed) if state == "running" else None
        self.query_one("#train-status", Static).update(
            f"run {run.id}: {state_said(state, status.message)} · step {step}/{status.max_steps}")
        self.query_one("#train-speed", Static).update(
            (f"{tokens:,.0f} tok/s" if isinstance(tokens, (int, float)) else "- tok/s")
            + (f" · ETA {duration(eta)}" if state == "running" else "")
            + (f" · {mem * 2**20 / 1e9:,.1f} GB" if isinstance(mem, (int, float)) else ""))  # mem_mb is MiB
        if records:
            self.draw_plot()
        # The step's header and the sidebar say the run's state and its checkpoints: refresh them when
        # either changes (a header still saying "starting" under a running run reads as stuck).
        if state != self.shown_state or any(r.get("type") == "recall" for r in records):
            self.shown_state = state
            self.project_changed()
        elif state not in ACTIVE_STATES and records == [] and lines == []:
            self.project_changed()

    def draw_plot(self) -> None:
        if self.plot is None:
            return
        plt = self.plot.plt
        plt.clear_data()
        # The latest recall check beside the loss: for facts it is what the run is judged by.
        figure = recall_figure(self.view.recall)
        plt.title(f"loss · {figure} at step {self.view.recall['step']}" if figure else "loss")
        if self.view.train:
            plt.plot([s for s, _ in self.view.train], [v for _, v in self.view.train], label="train",
                     color=TRAIN_COLOR)
        if self.view.val:
            plt.plot([s for s, _ in self.view.val], [v for _, v in self.view.val], label="validation",
                     marker="dot", color=VALIDATION_COLOR)
        self.plot.refresh()

    # -- actions

    @writes
    @shows_errors
    def action_start(self) -> None:
        current = latest_run(self.project.runs_dir)
        if current is not None and current.state() in ACTIVE_STATES:
            self.notify(f"Run {current.id} is still {current.state()}; stop it first (s).", severity="warning")
            return
        self._plan_then_ask()

    @work(thread=True, exclusive=True, group="start-run", exit_on_error=False)
    def _plan_then_ask(self) -> None:
        """What the run would train (next_run_plan reads every pair: never on the event loop), then ask:
        a run takes minutes to hours of the machine, and `t` is one key."""
        from tunewiz.errors import TunewizError
        from tunewiz.training.launch import next_run_plan

        try:
            plan = next_run_plan(self.project)
        except TunewizError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=10)
            return
        self.app.call_from_thread(self._ask_to_start, plan.summary())

    def _ask_to_start(self, summary: str) -> None:
        from tunewiz.tui.widgets.dialogs import ConfirmDialog

        def answered(start: bool | None) -> None:
            if start:
                self.notify("Starting a run: reading the pairs, checking memory, starting the process...")
                self._start_run()

        self.app.push_screen(ConfirmDialog(f"Start a run?\n\n{self.app.for_shell(summary)}\n\n"
                                           "It goes on if you quit; s stops it."), answered)

    @work(thread=True, exclusive=True, group="start-run", exit_on_error=False)
    def _start_run(self) -> None:
        """start_run reads every pair, may ask nvidia-smi and fsyncs: never on the event loop."""
        from tunewiz.errors import TunewizError
        from tunewiz.training.launch import start_run

        try:
            run = start_run(self.project)
        except TunewizError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=10)
            return
        self.app.call_from_thread(self._started, run)

    def _started(self, run) -> None:
        self.notify(f"Started run {run.id}; it goes on if you quit.")
        self.follow(run)
        self.project_changed()

    @shows_errors
    def action_stop(self) -> None:
        from tunewiz.training.launch import stop_run

        if self.run is None or self.run.state() not in ACTIVE_STATES:
            self.notify("No run is going.", severity="warning")
            return
        stop_run(self.run)
        self.notify(f"Asked run {self.run.id} to stop after its current step.")

    def action_detach(self) -> None:
        """Leave the run going and go back to the steps."""
        self.screen.action_focus_sidebar()
        if self.run is not None and self.run.state() in ACTIVE_STATES:
            self.notify(f"Run {self.run.id} goes on; come back to step 6 or reopen tunewiz to follow it.")

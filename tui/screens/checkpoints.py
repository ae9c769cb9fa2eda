"""Checkpoints: every complete checkpoint with its losses and recall, the best marked and why; pick one.

The ranking is `tunewiz.checkpoints.rank_checkpoints`, the same as `tunewiz
checkpoints` prints. Sample answers (each checkpoint's greedy answer beside the
reference, for a few validation questions) need the model, so they are computed
by `tunewiz.samples` in a child process and cached in each checkpoint folder.
The pick is saved to [checkpoint] in the project file.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from tunewiz.checkpoints import CheckpointInfo, CheckpointReport, rank_checkpoints
from tunewiz.runs import find_run, newer_run_note
from tunewiz.errors import TunewizError
from tunewiz.tui.glyphs import GLYPHS
from tunewiz.tui.screens.base import StepPane, shows_errors, writes

SAMPLES_HINT = "s: each checkpoint's answers to a few validation questions, beside the reference"


class CheckpointsPane(StepPane):
    STEP = "checkpoints"
    BINDINGS = [Binding("enter", "pick", "Pick"), Binding("b", "pick_best", "Pick best"),
                Binding("s", "samples", "Sample answers")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.report: CheckpointReport | None = None
        self.samples: dict[int, list[dict[str, str]]] = {}
        self.samples_error = ""

    @property
    def rows(self) -> list[CheckpointInfo]:
        return self.report.checkpoints if self.report else []

    def compose(self) -> ComposeResult:
        # One scroll for the whole step: at 80x24 the summary (why this pick, drift, caveats) left the
        # table no rows when the table took what was left.
        with VerticalScroll(id="ckpt-scroll"):
            yield Static("", id="ckpt-summary", markup=False)
            yield DataTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
            yield Label(f"{GLYPHS['best']} best · ! overfit/drift · daily: everyday prompts answered",
                        classes="box-title")
            yield Static("", id="ckpt-bars", markup=False)
            yield Label("Sample answers", classes="box-title")
            with VerticalScroll(id="ckpt-samples-box"):
                yield Static(SAMPLES_HINT, id="ckpt-samples", markup=False)

    def focus_first(self) -> None:
        self.query_one("#ckpt-table").focus()

    def on_mount(self) -> None:
        self._add_columns(self.query_one("#ckpt-table", DataTable))

    COLUMNS = (("step", 5), ("train", 7), ("val", 7), ("trained", 7), ("reword", 7), ("daily", 5), ("", 2),
               ("pick", 4))
    """Short headers and fixed widths, so that every column fits the pane at 80 columns (the legend says the
    rest) and the table lays out the same whatever it showed before (widths that followed the content were
    rebuilt with the rows, and a busy machine once drew the header before they were)."""

    @classmethod
    def _add_columns(cls, table: DataTable) -> None:
        for label, width in cls.COLUMNS:
            table.add_column(label, width=width)

    def on_step_shown(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="checkpoints", exit_on_error=False)
    def load(self) -> None:
        try:
            report = rank_checkpoints(find_run(self.project, pinned=True))
        except TunewizError:
            report = None  # no run yet (or the picked one is gone): the summary says so
        self.app.call_from_thread(self._show, report)

    def _show(self, report: CheckpointReport | None) -> None:
        if self.report is None or report is None or report.run.id != self.report.run.id:
            self.samples, self.samples_error = {}, ""
        self.report = report
        pick = self.project.config.checkpoint.pick
        table = self.query_one("#ckpt-table", DataTable)
        table.clear()
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"  # noqa: E731
        for row in self.rows:
            flags = (GLYPHS["best"] if row.best else "") + ("!" if row.overfit else "")
            picked = GLYPHS["picked"] if pick == str(row.step) or (pick == "best" and row.best) else ""
            everyday = f"{row.drift.total - row.drift.broken}/{row.drift.total}" if row.drift else "-"
            table.add_row(str(row.step), fmt(row.train_loss), fmt(row.val_loss), str(row.trained or "-"),
                          str(row.reworded or "-"), everyday, flags, picked, key=str(row.step))
        summary = self.query_one("#ckpt-summary", Static)
        if report is None:
            summary.update("No runs yet: train first (step 6).")
        else:
            notes = [f"best ({report.kind}): {report.reason}"] if report.reason else []
            if report.base and (report.base.trained or report.base.reworded):
                notes.append(f"base model: {report.base.trained or '-'} trained, "
                             f"{report.base.reworded or '-'} reworded recalled")
            notes += [report.overfit.describe(report.patience)] if report.overfit else []
            notes += [report.note] if report.note else []
            notes += [report.caveat] if report.caveat else []
            newer = newer_run_note(self.project)
            notes += [f"Note: {newer}"] if newer else []
            summary.update(f"run {report.run.id}: {len(self.rows)} complete checkpoints · pick: {pick}\n"
                           "(enter picks the row, b picks the best)" + "".join(f"\n{n}" for n in notes))
        self.query_one("#ckpt-bars", Static).update(loss_bars(self.rows))
        self._show_samples()

    @writes
    def _pick(self, value: str) -> None:
        if self.report is None or not self.rows:
            self.notify("Nothing to pick yet: no run has a complete checkpoint (train first, step 6).",
                        severity="warning")
            return
        self.project.set("checkpoint.pick", value)
        self.project.set("checkpoint.run", self.report.run.id)
        self.project.save()
        self.notify(f"Picked checkpoint {value} of run {self.report.run.id}.")
        self._show(self.report)
        self.project_changed()

    @shows_errors
    def action_pick(self) -> None:
        table = self.query_one("#ckpt-table", DataTable)
        if not self.rows:
            return
        self._pick(str(self.rows[table.cursor_row].step))

    @on(DataTable.RowSelected, "#ckpt-table")
    def _row_selected(self) -> None:
        self.action_pick()

    @shows_errors
    def action_pick_best(self) -> None:
        self._pick("best")

    # -- sample answers

    def action_samples(self) -> None:
        if self.report is None or not self.rows:
            self.notify("No complete checkpoint to ask yet.", severity="warning")
            return
        self.samples, self.samples_error = {}, ""
        self.query_one("#ckpt-samples", Static).update(
            "Computing sample answers in the background (loads the model once; cached afterwards) ...")
        self.compute_samples(self.report.run.id)

    @work(thread=True, exclusive=True, group="ckpt-samples", exit_on_error=False)
    def compute_samples(self, run_id: str) -> None:
        from tunewiz.tui.background import JobCrashed, run_job

        try:
            # Generation needs torch: never in the UI process.
            progress = self.query_one("#ckpt-samples", Static)
            answers = run_job("samples", {"root": str(self.project.root), "run": run_id}, timeout=3600,
                              on_progress=lambda line: self.app.call_from_thread(progress.update, line))
        except (TunewizError, JobCrashed) as exc:  # a user's mistake (no checkpoint) or a bug: said, not raised
            self.app.call_from_thread(self._samples_ready, {}, str(exc))
            return
        self.app.call_from_thread(self._samples_ready, {int(step): a for step, a in answers.items()}, "")

    def _samples_ready(self, samples: dict[int, list[dict[str, str]]], error: str) -> None:
        self.samples, self.samples_error = samples, error
        if error:
            self.notify(f"Sample answers failed: {error}", severity="error", timeout=8)
        self._show_samples()

    def _show_samples(self) -> None:
        if self.samples_error:
            text = f"Sample answers failed: {self.samples_error}"
        elif self.samples:
            text = samples_text(self.rows, self.samples)
        else:
            return
        self.query_one("#ckpt-samples", Static).update(text)


def samples_text(rows: list[CheckpointInfo], samples: dict[int, list[dict[str, str]]]) -> str:
    """Per question: the reference, then each checkpoint's answer under it (one line each)."""
    questions: dict[str, dict[str, str]] = {}
    for row in rows:
        for answer in samples.get(row.step, []):
            questions.setdefault(answer["pair_id"], answer)
    if not questions:
        return "No validation or training pairs to ask."
    lines = []
    for n, (pair_id, first) in enumerate(questions.items(), 1):
        lines.append(f"Q{n} {first['question']}")
        lines.append(f"  {'reference':<12} {first['reference']}")
        for row in rows:
            found = next((a["answer"] for a in samples.get(row.step, []) if a["pair_id"] == pair_id), None)
            if found is not None:
                mark = GLYPHS["best"] if row.best else ("!" if row.overfit else " ")
                lines.append(f"  {'step ' + str(row.step) + ' ' + mark:<12} {' '.join(found.split()) or '(empty)'}")
    return "\n".join(lines)


def loss_bars(rows: list[CheckpointInfo], width: int = 40) -> str:
    """A small bar chart per checkpoint (fits 80 columns): reworded recall when the run checked it,
    else validation loss."""
    recalled = [r for r in rows if r.reworded is not None]
    if recalled:
        lines = ["reworded questions recalled"]
        for row in recalled:
            bar = GLYPHS["bar"] * round(width * row.reworded.fraction)
            lines.append(f"{row.step:>7} {bar or GLYPHS['empty_bar']} {row.reworded}{' ' + GLYPHS['best'] if row.best else ''}"
                         f"{' !' if row.overfit else ''}")
        return "\n".join(lines)
    scored = [r for r in rows if r.val_loss is not None]
    if not scored:
        return "(no validation loss or recall logged yet)"
    top = max(r.val_loss for r in scored) or 1.0
    lines = ["validation loss"]
    for row in scored:
        bar = GLYPHS["bar"] * max(1, round(width * row.val_loss / top))
        lines.append(f"{row.step:>7} {bar} {row.val_loss:.4f}{' ' + GLYPHS['best'] if row.best else ''}{' !' if row.overfit else ''}")
    return "\n".join(lines)

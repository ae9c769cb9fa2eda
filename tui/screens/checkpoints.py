"""Checkpoints: every complete checkpoint with its losses, the best marked, overfitting shown; pick one.

Built from the run folder's files (metrics.jsonl and the COMPLETE markers). The
pick is saved to [checkpoint] in the project file.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Label, Static

from tunewiz.runs import Run
from tunewiz.tui.screens.base import StepPane, shows_errors
from tunewiz.tui.screens.train import latest_run


@dataclass
class CheckpointRow:
    step: int
    train_loss: float | None
    val_loss: float | None
    best: bool = False
    overfit: bool = False
    """Validation loss has risen above the best while training loss kept falling."""


def checkpoint_rows(run: Run) -> list[CheckpointRow]:
    """One row per complete checkpoint, with the losses logged at (or just before) its step."""
    train: dict[int, float] = {}
    val: dict[int, float] = {}
    for record in run.metrics():
        step = record.get("step")
        if not isinstance(step, int):
            continue
        if record.get("type") == "train" and isinstance(record.get("loss"), (int, float)):
            train[step] = float(record["loss"])
        elif record.get("type") == "eval" and isinstance(record.get("val_loss"), (int, float)):
            val[step] = float(record["val_loss"])

    def at(series: dict[int, float], step: int) -> float | None:
        steps = [s for s in series if s <= step]
        return series[max(steps)] if steps else None

    rows = []
    for path in run.complete_checkpoints():
        step = int(path.name.rsplit("-", 1)[1])
        rows.append(CheckpointRow(step, at(train, step), at(val, step)))
    scored = [r for r in rows if r.val_loss is not None]
    if scored:
        best = min(scored, key=lambda r: r.val_loss)
        best.best = True
        for row in scored:
            if row.step > best.step and row.val_loss > best.val_loss and (
                    row.train_loss is not None and best.train_loss is not None and row.train_loss < best.train_loss):
                row.overfit = True
    return rows


class CheckpointsPane(StepPane):
    STEP = "checkpoints"
    BINDINGS = [Binding("enter", "pick", "Pick"), Binding("b", "pick_best", "Pick best")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run: Run | None = None
        self.rows: list[CheckpointRow] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="ckpt-summary", markup=False)
        yield DataTable(id="ckpt-table", cursor_type="row", zebra_stripes=True)
        yield Label("val loss by checkpoint (★ best, ! overfitting)", classes="box-title")
        yield Static("", id="ckpt-bars", markup=False)

    def focus_first(self) -> None:
        self.query_one("#ckpt-table").focus()

    def on_mount(self) -> None:
        self.query_one("#ckpt-table", DataTable).add_columns("step", "train loss", "val loss", "", "picked")

    def on_step_shown(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="checkpoints", exit_on_error=False)
    def load(self) -> None:
        cfg = self.project.config.checkpoint
        run = Run(self.project.runs_dir / cfg.run) if cfg.run else latest_run(self.project)
        rows = checkpoint_rows(run) if run is not None and run.dir.is_dir() else []
        self.app.call_from_thread(self._show, run, rows)

    def _show(self, run: Run | None, rows: list[CheckpointRow]) -> None:
        self.run, self.rows = run, rows
        pick = self.project.config.checkpoint.pick
        table = self.query_one("#ckpt-table", DataTable)
        table.clear()
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"  # noqa: E731
        for row in rows:
            flags = ("★ best" if row.best else "") + ("! overfit" if row.overfit else "")
            picked = "◀" if pick == str(row.step) or (pick == "best" and row.best) else ""
            table.add_row(str(row.step), fmt(row.train_loss), fmt(row.val_loss), flags, picked, key=str(row.step))
        summary = self.query_one("#ckpt-summary", Static)
        if run is None:
            summary.update("No runs yet: train first (step 6).")
        else:
            summary.update(f"run {run.id}: {len(rows)} complete checkpoints · pick: {pick} "
                           "(enter picks the row, b picks the best)")
        self.query_one("#ckpt-bars", Static).update(loss_bars(rows))

    def _pick(self, value: str) -> None:
        self.project.set("checkpoint.pick", value)
        if self.run is not None:
            self.project.set("checkpoint.run", self.run.id)
        self.project.save()
        self.notify(f"Picked checkpoint {value} of run {self.run.id if self.run else '-'}.")
        self._show(self.run, self.rows)
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


def loss_bars(rows: list[CheckpointRow], width: int = 40) -> str:
    """A small bar chart of validation loss per checkpoint (fits 80 columns)."""
    scored = [r for r in rows if r.val_loss is not None]
    if not scored:
        return "(no validation loss logged yet)"
    top = max(r.val_loss for r in scored) or 1.0
    lines = []
    for row in scored:
        bar = "█" * max(1, round(width * row.val_loss / top))
        lines.append(f"{row.step:>7} {bar} {row.val_loss:.4f}{' ★' if row.best else ''}{' !' if row.overfit else ''}")
    return "\n".join(lines)

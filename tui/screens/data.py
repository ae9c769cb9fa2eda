"""Data: import files of pairs; generate pairs with an LLM; the generator's settings."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm


class DataPane(StepPane):
    STEP = "data"
    BINDINGS = [Binding("i", "focus_import", "Import file")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Import a file of pairs (CSV, JSONL, Alpaca/ShareGPT/OpenAI JSON)", classes="box-title")
            with Horizontal(classes="row"):
                yield Input(placeholder="path to a file", id="import-path")
                yield Button("Import", id="import")
            yield Static("", id="import-report", markup=False)
            yield Label("Generator settings", classes="box-title")
            yield SettingsForm(self.project, "generator", id="generator-form")

    def action_focus_import(self) -> None:
        self.query_one("#import-path").focus()

    @on(Button.Pressed, "#import")
    @on(Input.Submitted, "#import-path")
    def start_import(self) -> None:
        text = self.query_one("#import-path", Input).value.strip()
        if not text:
            self.notify("Type the path of a file to import.", severity="warning")
            return
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        self.query_one("#import-report", Static).update(f"Importing {path} ...")
        self.import_file(path)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def import_file(self, path: Path) -> None:
        from tunewiz.dataset import PairStore
        from tunewiz.errors import TunewizError
        from tunewiz.imports import import_file

        try:
            report = import_file(PairStore(self.project.pairs_path), path)
        except (TunewizError, OSError) as exc:
            self.app.call_from_thread(self._import_failed, str(exc))
            return
        lines = [report.summary()] + [f"  {p.where}: {p.reason}" for p in report.problems[:20]]
        if len(report.problems) > 20:
            lines.append(f"  ... and {len(report.problems) - 20} more")
        self.app.call_from_thread(self._imported, "\n".join(lines))

    def _import_failed(self, message: str) -> None:
        self.query_one("#import-report", Static).update(message)
        self.notify(message, severity="error", timeout=10)

    def _imported(self, text: str) -> None:
        self.query_one("#import-report", Static).update(text)
        self.notify(text.splitlines()[0])
        self.project_changed()

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.project_changed()

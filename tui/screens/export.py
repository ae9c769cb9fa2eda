"""Export: merge the picked checkpoint, convert to GGUF, smoke-test, and the commands to run it."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Label, RichLog, Static

from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm


def run_commands(project, export_name: str) -> str:
    """The commands that run an export in llama.cpp and Ollama (shown to copy)."""
    folder = project.exports_dir / export_name
    ggufs = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    gguf = ggufs[0] if ggufs else folder / f"{export_name}-q8_0.gguf"
    ollama = project.config.export.ollama_name or project.name
    return (f"llama-cli -m {gguf} -cnv\n"
            f"llama-server -m {gguf} --port 8080\n"
            f"cd {folder} && ollama create {ollama} -f Modelfile && ollama run {ollama}")


class ExportPane(StepPane):
    STEP = "export"
    BINDINGS = [Binding("ctrl+g", "export", "Export")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="export-summary", markup=False)
            yield SettingsForm(self.project, "export", id="export-form")
            yield Label("Progress", classes="box-title")
            yield RichLog(id="export-log", max_lines=200, markup=False, wrap=True)
            yield Label("Run it (copy these)", classes="box-title")
            yield Static("", id="export-commands", markup=False)

    @property
    def export_name(self) -> str:
        return self.project.config.export.name or self.project.name

    def on_step_shown(self) -> None:
        cfg = self.project.config.checkpoint
        self.query_one("#export-summary", Static).update(
            f"Exports checkpoint '{cfg.pick}' of run {cfg.run or '(latest)'} to exports/{self.export_name}/ "
            "· ctrl+g starts")
        self.query_one("#export-commands", Static).update(run_commands(self.project, self.export_name))

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.on_step_shown()
        self.project_changed()

    def action_export(self) -> None:
        self.query_one("#export-log", RichLog).write("Starting the export ...")
        self.export()

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self) -> None:
        from tunewiz.tui.background import stream_job

        log = lambda text: self.app.call_from_thread(self.query_one("#export-log", RichLog).write, text)  # noqa: E731
        status = stream_job("export", str(self.project.root), log)
        if status != 0:
            self.app.call_from_thread(self.notify, "Export failed: see the progress log.", severity="error")
        else:
            self.app.call_from_thread(self.notify, "Export finished.")
        self.app.call_from_thread(self.on_step_shown)
        self.app.call_from_thread(self.project_changed)

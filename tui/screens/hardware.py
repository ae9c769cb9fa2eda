"""Hardware: what was detected, the memory estimate for the current choices, the advice."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from tunewiz.errors import TunewizError
from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm


class HardwarePane(StepPane):
    STEP = "hardware"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Detected", classes="box-title")
            yield Static("Detecting ...", id="hardware-report", markup=False)
            yield SettingsForm(self.project, "hardware", id="hardware-form")

    def on_step_shown(self) -> None:
        self.query_one("#hardware-form", SettingsForm).reload()
        self.detect()

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.project_changed()
        self.detect()

    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def detect(self) -> None:
        from tunewiz.training.launch import hardware_report_for_next_run

        try:
            text = "\n".join(hardware_report_for_next_run(self.project)[0])
        except TunewizError as exc:  # e.g. an unreadable base model
            text = f"Hardware detection failed: {exc}"
        except Exception as exc:  # a bug: said on the step (never taking the UI down), with its type
            text = f"Hardware detection failed with an internal error ({type(exc).__name__}: {exc})"
        self.app.call_from_thread(self.query_one("#hardware-report", Static).update, text)

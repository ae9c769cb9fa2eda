"""Hyperparameters: a preset to start from, then every value in a checked form with its help."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label

from tunewiz.presets import mark_edited
from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm


class HyperparametersPane(StepPane):
    STEP = "hyperparameters"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("auto: defaults chosen at train time; edits stay yours", classes="box-title")
            yield SettingsForm(self.project, "hyperparameters", id="hp-form")

    def on_step_shown(self) -> None:
        self.query_one("#hp-form", SettingsForm).reload()

    @on(SettingsForm.Saved)
    def _saved(self, event: SettingsForm.Saved) -> None:
        form = self.query_one("#hp-form", SettingsForm)
        if event.key == "preset":
            if event.value != "custom":
                self.apply_preset(event.value)
                form.reload()
        elif mark_edited(self.project, f"hyperparameters.{event.key}"):
            self.project.save()
            self.notify("The preset is now custom: a value of it was changed.")
            form.reload()  # the preset's advice goes with it
        self.project_changed()

    def apply_preset(self, name: str) -> None:
        from tunewiz.presets import apply_preset

        apply_preset(self.project, name)
        self.project.save()
        self.notify(f"Applied the {name} preset.")

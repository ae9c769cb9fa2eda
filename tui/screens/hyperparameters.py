"""Hyperparameters: a preset to start from, then every value in a checked form with its help."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from tunewiz.errors import TunewizError
from tunewiz.presets import mark_edited
from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm


class HyperparametersPane(StepPane):
    STEP = "hyperparameters"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            # What the next run trains with, before the form: under preset auto it is not the form's
            # values (40 facts train at LoRA rank 64 where the form says 16).
            yield Label("The next run", classes="box-title")
            yield Static("Planning ...", id="hp-plan", markup=False)
            yield Label("auto: defaults chosen at train time; edits stay yours", classes="box-title")
            yield SettingsForm(self.project, "hyperparameters", id="hp-form")

    def on_step_shown(self) -> None:
        self.query_one("#hp-form", SettingsForm).reload()
        self.show_plan()

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def show_plan(self) -> None:
        from tunewiz.training.launch import next_run_plan

        try:
            text = next_run_plan(self.project).summary()  # short: the preset select stays in view at 80x24
        except TunewizError as exc:  # no pairs yet, an unreadable base model
            text = f"Not planned yet: {exc}"
        except Exception as exc:  # a bug: said on the step (never taking the UI down), with its type
            text = f"Planning failed with an internal error ({type(exc).__name__}: {exc})"
        self.app.call_from_thread(self.query_one("#hp-plan", Static).update, self.app.for_shell(text))

    @on(SettingsForm.Saved)
    def _saved(self, event: SettingsForm.Saved) -> None:
        form = self.query_one("#hp-form", SettingsForm)
        if event.key == "preset":
            if event.value != "custom":
                self.apply_preset(event.value)
                form.reload()
        else:
            self._mark_edited(event.key)
        self.project_changed()
        self.show_plan()

    @on(SettingsForm.Retyped)
    def _retyped(self, event: SettingsForm.Retyped) -> None:
        """Typing the value already there still makes it the user's under preset auto (even the default);
        under a named preset it changes nothing (the value is still the preset's)."""
        if self.project.config.hyperparameters.preset == "auto" and event.key != "preset" \
                and self._mark_edited(event.key):
            self.project_changed()
            self.show_plan()

    def _mark_edited(self, key: str) -> bool:
        """Record the edit (set_by_user under auto; the preset becomes custom under a named one)."""
        hp = self.project.config.hyperparameters
        preset, set_by_user = hp.preset, hp.set_by_user
        if not mark_edited(self.project, f"hyperparameters.{key}"):
            return False
        try:
            self.project.save()
        except TunewizError as exc:  # the file is unchanged: so is what the wizard holds
            hp.preset, hp.set_by_user = preset, set_by_user
            self.notify(str(exc), severity="error", timeout=10)
            return False
        form = self.query_one("#hp-form", SettingsForm)
        if preset == "auto":
            form.reload(["set_by_user"])
        else:
            self.notify("The preset is now custom: a value of it was changed.")
            form.reload()  # the preset's advice goes with it
        return True

    def apply_preset(self, name: str) -> None:
        from tunewiz.presets import apply_preset

        apply_preset(self.project, name)
        self.project.save()
        self.notify(f"Applied the {name} preset.")

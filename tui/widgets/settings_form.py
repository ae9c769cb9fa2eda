"""A form generated from one section of the schema: one input per key, with its help.

Every change is parsed and checked with `project.parse_value` (the same rules as
`tunewiz config`) as it is typed, and an invalid value shows its message under the field.
A typed value is saved to the TOML when it is complete: on Enter, or when the field loses
the focus (or the form closes), and only when it is valid; until then the file keeps the
value it had. Saving on every keystroke wrote half-typed values, such as the first part of a
URL with a password in it, or 200 on the way to an out-of-range 2000. A choice (a select, a
switch) is saved at once.
"""

from __future__ import annotations

import typing
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static, Switch

from tunewiz.errors import TunewizError
from tunewiz.presets import advice
from tunewiz.project import Project, parse_value
from tunewiz.schema import SECTIONS, field_specs


def format_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class SettingsForm(Vertical):
    """Inputs for the keys of one section (or the ones named in `keys`)."""

    class Saved(Message):
        """A value was checked and written to the project file."""

        def __init__(self, section: str, key: str, value: Any) -> None:
            super().__init__()
            self.section, self.key, self.value = section, key, value

    class Retyped(Message):
        """The user typed or chose the value the project already holds (nothing to write)."""

        def __init__(self, section: str, key: str) -> None:
            super().__init__()
            self.section, self.key = section, key

    def __init__(self, project: Project, section: str, keys: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.section = section
        self.specs = [f for f in field_specs(section) if keys is None or f.name in keys]
        self.types = typing.get_type_hints(SECTIONS[section])
        self.typed: set[str] = set()
        """Inputs the user typed in since their value was last saved (an input posts Changed when it is
        mounted too: only one with focus is the user typing)."""
        self.add_class("settings-form")

    def compose(self) -> ComposeResult:
        for spec in self.specs:
            value = self.project.get(f"{self.section}.{spec.name}")
            wid = f"{self.section}-{spec.name}"
            yield Label(spec.name, classes="field-name")
            choices = spec.metadata.get("choices")
            if self.types[spec.name] is bool:
                yield Switch(value=value, id=wid, classes="field-input")
            elif choices:
                yield Select([(c, c) for c in choices], value=value, allow_blank=False, id=wid, classes="field-input")
            else:
                yield Input(format_value(value), id=wid, classes="field-input")
            yield Static(self._help(spec), id=f"{wid}-help", classes="field-help", markup=False)
            error = Static("", id=f"{wid}-error", classes="field-error", markup=False)
            error.display = False
            yield error

    def reload(self, keys: list[str] | None = None) -> None:
        """Show the project's current values (after a preset changed many at once) without saving."""
        with self.prevent(Input.Changed, Input.Blurred, Select.Changed, Switch.Changed):
            for spec in self.specs:
                if keys is not None and spec.name not in keys:
                    continue
                value = self.project.get(f"{self.section}.{spec.name}")
                widget = self.query_one(f"#{self.section}-{spec.name}")
                if isinstance(widget, Input):
                    widget.value = format_value(value)
                else:
                    widget.value = value
                self.query_one(f"#{self.section}-{spec.name}-error", Static).display = False
                self.query_one(f"#{self.section}-{spec.name}-help", Static).update(self._help(spec))

    def _help(self, spec) -> str:
        """The field's help, its allowed range, and the preset's advice on it (hyperparameters)."""
        meta = spec.metadata
        parts = [meta.get("help", "")]
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and hi is not None:
            parts.append(f"Allowed: {lo:g} to {hi:g}.")
        if self.section == "hyperparameters":
            preset = self.project.config.hyperparameters.preset
            word = advice(preset, spec.name)
            if word:
                parts.append(f"Preset {preset}: {word}")
        return " ".join(part for part in parts if part)

    def _key_of(self, widget_id: str | None) -> str | None:
        prefix = f"{self.section}-"
        if widget_id and widget_id.startswith(prefix):
            return widget_id[len(prefix):]
        return None

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        """Check as it is typed; save nothing yet (see the module's docstring)."""
        event.stop()
        key = self._key_of(event.input.id)
        if key is None:
            return
        if event.input.has_focus:
            self.typed.add(event.input.id)
        error = self.query_one(f"#{event.input.id}-error", Static)
        try:
            parse_value(self.section, key, event.value)
        except ValueError as exc:
            error.update(str(exc))
            error.display = True
            return
        error.display = False

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._save(event.input.id, event.value, typed=event.input.id in self.typed)

    @on(Input.Blurred)
    def _input_blurred(self, event: Input.Blurred) -> None:
        event.stop()
        if event.input.id in self.typed:
            self._save(event.input.id, event.value)

    def on_unmount(self) -> None:
        """A value typed but neither entered nor left (the step switched, the wizard quit) is still saved."""
        for widget in self.query(Input):
            if widget.id in self.typed:
                self._save(widget.id, widget.value, announce=False)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.BLANK:
            self._save(event.select.id, str(event.value), typed=event.select.has_focus)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._save(event.switch.id, "true" if event.value else "false", typed=event.switch.has_focus)

    def _save(self, widget_id: str | None, text: str, typed: bool = True, announce: bool = True) -> None:
        """Check and write one value; `typed`: the user entered it (a value the project holds already is
        then the user's too: Retyped); `announce`: tell the screen (not while the form closes)."""
        key = self._key_of(widget_id)
        if key is None:
            return
        error = self.query_one(f"#{widget_id}-error", Static)
        try:
            value = parse_value(self.section, key, text)
        except ValueError as exc:  # the file keeps its value; the message stays under the field
            error.update(str(exc))
            error.display = True
            return
        self.typed.discard(widget_id)
        error.display = False
        before = self.project.get(f"{self.section}.{key}")
        if before == value:
            if typed and announce:
                self.post_message(self.Retyped(self.section, key))
            return
        self.project.set(f"{self.section}.{key}", value)
        try:
            self.project.save()
        except TunewizError as exc:  # a full or read-only disk, a project open read-only: the file is unchanged
            self.project.set(f"{self.section}.{key}", before)  # and so is what the wizard holds
            if announce:
                error.update(f"not saved: {exc}")
                error.display = True
                self.app.notify(str(exc), severity="error", timeout=10)
            return
        if announce:
            self.post_message(self.Saved(self.section, key, value))

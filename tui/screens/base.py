"""What every step pane shares: access to the open project and a hook when it is shown."""

from __future__ import annotations

import functools
from typing import Any, Callable

from textual.containers import Vertical

from tunewiz.errors import TunewizError


def shows_errors(method: Callable) -> Callable:
    """Turn a user-fixable error raised by an action into a notification instead of a crash."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (TunewizError, ValueError, OSError, KeyError) as exc:
            self.app.notify(str(exc), severity="error", timeout=8)
            return None

    return wrapper


def writes(method: Callable) -> Callable:
    """An action that changes the project (its pairs, runs or exports): refused, said, when the project is
    open read-only. Settings go through Project.save, which refuses on its own."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self.app.project.check_writable()
        except TunewizError as exc:
            self.app.notify(str(exc), severity="error", timeout=8)
            return None
        return method(self, *args, **kwargs)

    return wrapper


class StepPane(Vertical):
    """One step of the wizard, shown in the main area when its sidebar entry is picked."""

    STEP = ""
    TITLE = ""

    @property
    def project(self):
        return self.app.project

    def on_step_shown(self) -> None:
        """Called each time the step becomes visible: re-read what may have changed on disk."""

    def project_changed(self) -> None:
        """Ask the app to refresh the sidebar after this step changed the project."""
        self.app.refresh_status()

    def focus_first(self) -> None:
        """Move the focus into this step: the first control that takes it and is not a text field.

        Landing in a text field would turn the next step key into a typed character (a "5" saved
        as the export name); a step of text fields only keeps the focus on the sidebar, and Tab
        goes on into the fields."""
        from textual.containers import HorizontalScroll, ScrollableContainer, VerticalScroll
        from textual.widgets import Input, TextArea

        containers = (ScrollableContainer, VerticalScroll, HorizontalScroll)
        for widget in self.query("*"):
            # Scroll containers take the focus too, but typing into them does nothing.
            if (widget.focusable and widget.display and type(widget) not in containers
                    and not isinstance(widget, (Input, TextArea))):
                widget.focus()
                return
        self.screen.query_one("#steps").focus()

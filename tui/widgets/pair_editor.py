"""A multi-line editor for one pair's question and answer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, TextArea


class PairEditor(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (question, answer), or None when cancelled."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", priority=True),
                Binding("escape", "cancel", "Cancel", priority=True)]

    def __init__(self, question: str, answer: str) -> None:
        super().__init__()
        self.question = question
        self.answer = answer

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog editor"):
            yield Label("Question (tab: next field)", classes="dialog-title")
            yield TextArea(self.question, id="edit-question", tab_behavior="focus", soft_wrap=True)
            yield Label("Answer", classes="dialog-title")
            yield TextArea(self.answer, id="edit-answer", tab_behavior="focus", soft_wrap=True)
        yield Footer()

    def on_mount(self) -> None:
        for area in self.query(TextArea):
            area.cursor_blink = False  # a steady cursor: no redraws over SSH, the same picture every time

    def action_save(self) -> None:
        question = self.query_one("#edit-question", TextArea).text.strip()
        answer = self.query_one("#edit-answer", TextArea).text.strip()
        if not question or not answer:
            self.notify("A pair needs both a question and an answer.", severity="error")
            return
        self.dismiss((question, answer))

    def action_cancel(self) -> None:
        self.dismiss(None)

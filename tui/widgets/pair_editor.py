"""A multi-line editor for one sample: a pair's question and answer, and a conversation's earlier turns."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, TextArea


class PairEditor(ModalScreen[tuple[str, str, list] | None]):
    """Dismisses with (question, answer, history), or None when cancelled. `history` is the
    conversation's earlier turns with their text edited (roles and weights kept)."""

    # Ctrl+S is not a priority binding: those run as soon as the key arrives, before the text field has
    # taken the keys queued ahead of it (over SSH text and Ctrl+S come in one burst), and saved the
    # text without them. As a plain binding it reaches the dialog after the field, in order.
    BINDINGS = [Binding("ctrl+s", "save", "Save"),
                Binding("escape", "cancel", "Cancel", priority=True)]

    def __init__(self, question: str, answer: str, history: list | None = None) -> None:
        super().__init__()
        self.question = question
        self.answer = answer
        self.history = list(history or [])

    def compose(self) -> ComposeResult:
        # A conversation scrolls through its turns; one pair fills the dialog with its two fields.
        box = VerticalScroll(classes="dialog editor turns") if self.history else Vertical(classes="dialog editor")
        with box:
            for number, turn in enumerate(self.history):
                who = "User" if turn["role"] == "user" else "Assistant" + (
                    " (weight 0: not trained on)" if turn.get("weight") == 0 else "")
                yield Label(f"Turn {number // 2 + 1} · {who}", classes="dialog-title")
                yield TextArea(turn["content"], id=f"edit-turn-{number}", tab_behavior="focus", soft_wrap=True,
                               classes="turn")
            last = f"Turn {len(self.history) // 2 + 1} · " if self.history else ""
            yield Label(f"{last}Question (tab: next field)", classes="dialog-title")
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
        history = [turn | {"content": self.query_one(f"#edit-turn-{n}", TextArea).text.strip()}
                   for n, turn in enumerate(self.history)]
        if not question or not answer or not all(turn["content"] for turn in history):
            self.notify("Every turn needs text: a question and an answer at least.", severity="error")
            return
        self.dismiss((question, answer, history))

    def action_cancel(self) -> None:
        self.dismiss(None)

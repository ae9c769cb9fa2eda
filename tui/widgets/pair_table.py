"""A table of pairs that draws only the rows on screen, so 100k pairs scroll as fast as 10.

It is a Textual ScrollView using the line API: the virtual height is the number
of rows and `render_line` builds the few visible lines on demand. Nothing per row
is created up front (a DataTable would build 100k row objects).
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tunewiz.dataset import Pair
from tunewiz.tui.glyphs import GLYPHS

STATUS_MARK = {status: GLYPHS[status] for status in ("accepted", "rejected", "pending")}
STATUS_STYLE = {"accepted": Style(color="green"), "rejected": Style(color="red", dim=True), "pending": Style()}
DUP_STYLE = Style(color="yellow")
CURSOR_STYLE = Style(reverse=True)
MARKED_STYLE = Style(bgcolor="grey23")


def pair_score(pair: Pair) -> float | None:
    """The score shown and filtered on: the judge's if there is one, else the first."""
    if not pair.scores:
        return None
    if "judge" in pair.scores:
        return pair.scores["judge"]
    return next(iter(pair.scores.values()))


def one_line(text: str) -> str:
    return " ".join(text.split())



def fit(text: str, width: int) -> str:
    """`text` in exactly `width` cells: padded, or cut with a visible "…" (never silently cropped)."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, max(width - 1, 0)) + "…" if width else ""

class PairTable(ScrollView, can_focus=True):
    """Rows of pairs with a cursor; the parent decides which rows (filtering) and what keys do."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class CursorMoved(Message):
        def __init__(self, pair: Pair | None) -> None:
            super().__init__()
            self.pair = pair

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[Pair] = []
        self.marked: set[str] = set()
        self.duplicates: set[str] = set()

    # -- data

    def set_rows(self, rows: list[Pair], keep: str | None = None) -> None:
        """Show `rows`; keep the cursor on pair id `keep` when it is still shown."""
        self.rows = rows
        self.virtual_size = Size(self.size.width, len(rows))
        index = 0
        if keep is not None:
            for i, pair in enumerate(rows):
                if pair.id == keep:
                    index = i
                    break
            else:
                index = min(self.cursor, max(len(rows) - 1, 0))
        self.cursor = index
        self.refresh()

    @property
    def current(self) -> Pair | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # -- cursor

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.rows) - 1)) if self.rows else 0

    def watch_cursor(self, value: int) -> None:
        height = self.scrollable_content_region.height or 1
        if value < self.scroll_offset.y:
            self.scroll_to(y=value, animate=False)
        elif value >= self.scroll_offset.y + height:
            self.scroll_to(y=value - height + 1, animate=False)
        self.refresh()
        self.post_message(self.CursorMoved(self.current))

    def action_cursor(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * max(1, self.scrollable_content_region.height - 1)

    def action_jump(self, where: int) -> None:
        self.cursor = len(self.rows) - 1 if where < 0 else 0

    def on_click(self, event) -> None:
        self.cursor = event.y + self.scroll_offset.y

    # -- drawing

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = y + self.scroll_offset.y
        if index >= len(self.rows) or width <= 0:
            return Strip.blank(width, self.rich_style)
        pair = self.rows[index]
        score = pair_score(pair)
        score_text = f"{score:>3g}" if score is not None else "  -"
        source_w = 12 if width >= 60 else 0
        text_w = max(width - 4 - 4 - (source_w + 1 if source_w else 0), 10)
        question_w = text_w // 2
        answer_w = text_w - question_w - 1
        marks = (GLYPHS["marked"] if pair.id in self.marked else " ") + STATUS_MARK.get(pair.status, "?") + (
            GLYPHS["dup"] if pair.id in self.duplicates else " ") + " "
        base = self.rich_style
        if pair.id in self.marked:
            base = base + MARKED_STYLE
        if index == self.cursor and self.has_focus:
            base = base + CURSOR_STYLE
        elif index == self.cursor:
            base = base + Style(underline=True)
        status_style = base + STATUS_STYLE.get(pair.status, Style())
        text_style = base + (DUP_STYLE if pair.id in self.duplicates else Style())
        segments = [
            Segment(marks, status_style),
            Segment(fit(one_line((f"[{pair.turns} turns] " if pair.history else "") + pair.question),
                        question_w) + " ", text_style),
            Segment(fit(one_line(pair.answer), answer_w), base),
        ]
        if source_w:
            segments.append(Segment(" " + fit(pair.source, source_w), base + Style(dim=True)))
        segments.append(Segment(score_text, base))
        return Strip(segments).adjust_cell_length(width, base)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

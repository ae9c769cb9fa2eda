"""Review: read, accept, reject, edit and delete pairs; search and filter; undo; `w` opens the
rewordings (tunewiz.tui.widgets.rewordings).

The pairs journal is loaded once in a worker; every change is one append through
`PairStore` (update, set_status, delete) and can be undone by writing the earlier
state back. Near-duplicates are found in a worker and highlighted when ready.
"""

from __future__ import annotations

import dataclasses
import os

from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from tunewiz.dataset import Pair, check_verdict, prompt_text
from tunewiz.tui.glyphs import GLYPHS
from tunewiz.tui.review_query import filter_pairs, length_stats, parse_query, with_status
from tunewiz.tui.screens.base import StepPane, shows_errors, writes
from tunewiz.tui.widgets.pair_table import PairTable, pair_score
from tunewiz.words import counted

STATUS_CYCLE = (None, "pending", "accepted", "rejected")


class SearchInput(Input):
    """The search field: Escape clears a search (every pair shown again, the list focused), as in a
    browser's find bar; on an empty field it does what Escape does elsewhere (back to the steps)."""

    BINDINGS = [Binding("escape", "clear_search", "Clear search", show=False)]

    def action_clear_search(self) -> None:
        if not self.value:
            raise SkipAction()
        self.value = ""
        self.screen.query_one(PairTable).focus()


def snapshot(pair: Pair) -> Pair:
    """A copy of a pair as it is now, for undo."""
    return dataclasses.replace(pair, scores=dict(pair.scores), history=[dict(t) for t in pair.history])


class ReviewPane(StepPane):
    STEP = "review"
    BINDINGS = [
        Binding("a", "set_status('accepted')", "Accept"),
        Binding("r", "set_status('rejected')", "Reject"),
        Binding("p", "set_status('pending')", "Pending", show=False),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete", show=False),
        Binding("u", "undo", "Undo"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("f", "cycle_status", "Filter", show=False),
        # The footer holds what fits in 80 columns; `?` lists the rest (marking and bulk actions).
        Binding("space", "mark", "Mark", show=False),
        Binding("m", "mark_shown", "Mark shown", show=False),
        Binding("c", "clear_marks", "Clear marks", show=False),
        Binding("A", "bulk_status('accepted')", "Accept marked", show=False),
        Binding("R", "bulk_status('rejected')", "Reject marked", show=False),
        Binding("D", "bulk_delete", "Delete marked", show=False),
        Binding("w", "rewordings", "Rewordings", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.store = None
        self.loaded_stat: tuple[int, int] | None = None
        self.undo_stack: list[list[Pair]] = []
        self.duplicates: set[str] = set()
        self.query_text = ""

    def compose(self) -> ComposeResult:
        yield SearchInput(placeholder="/ search · status:pending source:x score>=7 is:dup is:marked",
                          id="review-search")
        yield Static("Loading pairs ...", id="review-stats", markup=False)
        yield PairTable(id="pair-table")
        yield Static("", id="review-preview", markup=False)

    @property
    def table(self) -> PairTable:
        return self.query_one(PairTable)

    def focus_first(self) -> None:
        self.table.focus()

    # -- loading

    def _file_stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.project.pairs_path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def on_step_shown(self) -> None:
        if self.store is None or self._file_stat() != self.loaded_stat:
            self.load()

    @work(thread=True, exclusive=True, group="review-load", exit_on_error=False)
    def load(self) -> None:
        from tunewiz.dataset import PairStore

        stat = self._file_stat()
        try:
            store = PairStore(self.project.pairs_path)
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"{self.project.pairs_path}: {exc.strerror}", severity="error")
            return
        self.app.call_from_thread(self._loaded, store, stat)

    def _loaded(self, store, stat) -> None:
        self.store, self.loaded_stat = store, stat
        self.undo_stack.clear()
        self.table.marked.clear()
        if store.torn_lines:
            self.notify(store.unreadable_notice(), severity="warning")
        self.refilter()
        self.find_duplicates([(p.id, prompt_text(p)) for p in store])

    @work(thread=True, exclusive=True, group="review-dups", exit_on_error=False)
    def find_duplicates(self, questions: list[tuple[str, str]]) -> None:
        from tunewiz.errors import TunewizError
        from tunewiz.tui.background import JobCrashed, duplicates_in_child

        try:
            ids = duplicates_in_child(questions)
        except (TunewizError, JobCrashed) as exc:  # say so; the review goes on without highlights
            self.app.call_from_thread(self.notify, f"Duplicate detection failed: {exc}", severity="warning")
            return
        self.app.call_from_thread(self._duplicates_found, ids)

    def _duplicates_found(self, ids: set[str]) -> None:
        self.duplicates = ids
        self.table.duplicates = ids
        self.table.refresh()
        self.refilter()

    def _wrote(self) -> None:
        """After our own append: remember the file's new state so it is not reloaded."""
        self.loaded_stat = self._file_stat()
        self.project_changed()

    # -- showing

    def refilter(self, keep: str | None = None) -> None:
        if self.store is None:
            return
        try:
            query = parse_query(self.query_text)
        except ValueError as exc:
            self.query_one("#review-stats", Static).update(f"search: {exc}")
            return
        current = self.table.current
        rows = filter_pairs(self.store, query, self.duplicates, self.table.marked)
        self.table.set_rows(rows, keep=keep or (current.id if current else None))
        self.show_stats()

    def show_stats(self) -> None:
        counts = self.store.counts()
        rows = self.table.rows
        self.query_one("#review-stats", Static).update(
            f"{len(rows)} shown of {len(self.store)} · {GLYPHS['accepted']}{counts['accepted']} "
            f"{GLYPHS['pending']}{counts['pending']} "
            f"{GLYPHS['rejected']}{counts['rejected']} · {GLYPHS['dup']}{len(self.duplicates)} dup · "
            f"{GLYPHS['marked']}{len(self.table.marked)} marked\n"
            + length_stats(rows))

    @on(PairTable.CursorMoved)
    def _cursor_moved(self, event: PairTable.CursorMoved) -> None:
        pair = event.pair
        preview = self.query_one("#review-preview", Static)
        if pair is None:
            preview.update("No pairs to show." if self.store is not None else "")
            return
        score = pair_score(pair)
        earlier = "".join(f"{'U' if turn['role'] == 'user' else 'A'}: {turn['content']}\n" for turn in pair.history)
        # The status line first: below a long answer the pane cuts off why a check rejected the pair.
        preview.update(f"[{pair.status}] {pair.source}"
                       + (f" · rejected by a check: {check_verdict(pair)}" if pair.reason else "")
                       + (f" · a conversation of {pair.turns} turns" if pair.history else "")
                       + (f" · score {score:g}" if score is not None else "")
                       + (" · near-duplicate" if pair.id in self.duplicates else "")
                       + f"\n{earlier}Q: {pair.question}\nA: {pair.answer}")

    # -- search and filter

    def action_search(self) -> None:
        self.query_one("#review-search").focus()

    @on(Input.Changed, "#review-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.refilter()

    @on(Input.Submitted, "#review-search")
    def _search_done(self) -> None:
        self.table.focus()

    def action_cycle_status(self) -> None:
        query = parse_query(self.query_text) if self._query_ok() else None
        current = query.status if query else None
        following = STATUS_CYCLE[(STATUS_CYCLE.index(current) + 1) % len(STATUS_CYCLE)]
        self.query_one("#review-search", Input).value = with_status(self.query_text, following)

    def _query_ok(self) -> bool:
        try:
            parse_query(self.query_text)
            return True
        except ValueError:
            return False

    # -- changing pairs

    def _next_id(self) -> str | None:
        """The row after the cursor: where the cursor goes after acting on a row."""
        rows, index = self.table.rows, self.table.cursor
        if index + 1 < len(rows):
            return rows[index + 1].id
        return None

    @writes
    @shows_errors
    def action_set_status(self, status: str) -> None:
        pair = self.table.current
        if pair is None or self.store is None:
            return
        if pair.status == status:
            self.table.cursor += 1
            return
        self.undo_stack.append([snapshot(pair)])
        following = self._next_id()
        self.store.set_status([pair.id], status)
        self._wrote()
        self.refilter(keep=following or pair.id)

    def action_rewordings(self) -> None:
        """The pairs' questions in other words (checking recall, or training beside them): accept, reject, edit."""
        from tunewiz.tui.widgets.rewordings import RewordingsScreen

        self.app.push_screen(RewordingsScreen(self.project))

    @writes
    @shows_errors
    def action_edit(self) -> None:
        from tunewiz.tui.widgets.pair_editor import PairEditor

        pair = self.table.current
        if pair is None:
            return

        def done(result: tuple[str, str, list] | None) -> None:
            if result is None or result == (pair.question, pair.answer, pair.history):
                return
            self.undo_stack.append([snapshot(pair)])
            self.store.update(pair.id, question=result[0], answer=result[1], history=result[2])
            self._wrote()
            self.refilter(keep=pair.id)
            self.notify("Saved the edited pair.")

        self.app.push_screen(PairEditor(pair.question, pair.answer, pair.history), done)

    @writes
    @shows_errors
    def action_delete(self) -> None:
        pair = self.table.current
        if pair is None:
            return
        following = self._next_id()
        self.undo_stack.append([snapshot(pair)])
        self.store.delete(pair.id)
        self.table.marked.discard(pair.id)
        self._wrote()
        self.refilter(keep=following)
        self.notify("Deleted one pair (u to undo).")

    @writes
    @shows_errors
    def action_undo(self) -> None:
        if not self.undo_stack:
            self.notify("Nothing to undo.", severity="warning")
            return
        earlier = self.undo_stack.pop()
        self.store.add(earlier)  # one append: the earlier states win again (deleted pairs come back)
        self._wrote()
        self.refilter(keep=earlier[0].id)
        self.notify(f"Undid a change to {counted(len(earlier), 'pair')}.")

    # -- marks and bulk actions

    def action_mark(self) -> None:
        pair = self.table.current
        if pair is None:
            return
        self.table.marked.symmetric_difference_update({pair.id})
        self.table.cursor += 1
        self.show_stats()

    def action_mark_shown(self) -> None:
        self.table.marked.update(p.id for p in self.table.rows)
        self.table.refresh()
        self.show_stats()

    def action_clear_marks(self) -> None:
        self.table.marked.clear()
        self.table.refresh()
        self.show_stats()

    def _marked_pairs(self) -> list[Pair]:
        marked = [self.store.get(i) for i in self.table.marked if i in self.store] if self.store else []
        if not marked:
            self.notify("Mark rows first: space marks one, m marks every shown row.", severity="warning")
        return marked

    @writes
    @shows_errors
    def action_bulk_status(self, status: str) -> None:
        pairs = self._marked_pairs()
        if not pairs:
            return
        self.undo_stack.append([snapshot(p) for p in pairs])
        changed = self.store.set_status([p.id for p in pairs], status)
        self.table.marked.clear()
        self._wrote()
        self.refilter()
        self.notify(f"{status.capitalize()} {changed} pairs (u to undo).")

    @writes
    def action_bulk_delete(self) -> None:
        from tunewiz.tui.widgets.dialogs import ConfirmDialog

        pairs = self._marked_pairs()
        if not pairs:
            return

        @shows_errors
        def confirmed(self, yes: bool | None) -> None:
            if not yes:
                return
            self.undo_stack.append([snapshot(p) for p in pairs])
            self.store.delete_many(p.id for p in pairs)
            self.table.marked.clear()
            self._wrote()
            self.refilter()
            self.notify(f"Deleted {len(pairs)} pairs (u to undo).")

        self.app.push_screen(ConfirmDialog(f"Delete {len(pairs)} marked pairs? (u undoes it)"),
                             lambda yes: confirmed(self, yes))

"""The project's rewordings (data/rewordings.jsonl), opened from Review with `w`: accept, reject, edit.

Rewordings ask a pair's fact in other words: most check recall, some train beside their pair
(tunewiz.evalsets). A generated one may ask another fact, which a check would measure wrongly and
training would teach, so they are read and judged here as pairs are. Every change goes through the
rewording store, as `tunewiz rewordings --accept/--reject/--edit` does.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, Static

from tunewiz.errors import TunewizError
from tunewiz.words import counted


class RewordingsScreen(ModalScreen[None]):
    BINDINGS = [Binding("a", "set_status('accepted')", "Accept"),
                Binding("r", "set_status('rejected')", "Reject"),
                Binding("e", "edit", "Edit"),
                Binding("escape", "close", "Close", priority=True)]

    def __init__(self, project) -> None:
        super().__init__()
        self.project = project
        self.store = None
        self.pairs: dict = {}
        self.editing: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog editor"):
            yield Label("Rewordings: a pair's question in other words", classes="dialog-title")
            yield Static("", id="rewordings-summary", markup=False)
            yield DataTable(id="rewordings-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="rewording-detail", markup=False)
            yield Input(id="rewording-edit", placeholder="the reworded question; enter saves, escape cancels")
        yield Footer()

    def on_mount(self) -> None:
        from tunewiz.dataset import PairStore
        from tunewiz.evalsets import REWORDINGS_FILE, RewordingStore

        self.query_one("#rewording-edit", Input).display = False
        table = self.query_one(DataTable)
        table.add_columns("status", "use", "source", "reworded")
        try:
            self.store = RewordingStore(self.project.path(REWORDINGS_FILE))
            self.pairs = {p.id: p for p in PairStore(self.project.pairs_path)}
        except OSError as exc:
            self.notify(f"{exc.filename}: {exc.strerror}", severity="error")
            return
        self.show_rows()
        table.focus()

    def show_rows(self, keep: str | None = None) -> None:
        from tunewiz.evalsets import live_rewordings

        table = self.query_one(DataTable)
        table.clear()
        live = {r.id for r in live_rewordings(self.store, self.pairs)}
        items = list(self.store)
        for item in items:
            shown = item.status if item.id in live or item.status == "rejected" else "retired"
            table.add_row(shown, item.use, item.source, item.question, key=item.id)
        uses = {use: sum(1 for r in items if r.id in live and r.use == use) for use in ("check", "train")}
        self.query_one("#rewordings-summary", Static).update(self.app.for_shell(
            f"{counted(len(items), 'rewording')}: {uses['check']} checking recall, {uses['train']} training "
            "beside their pair; retired: their pair changed or was rejected." if items else
            "No stored rewordings: runs make rule rewordings on the fly. `tunewiz rewordings --generate` "
            "asks the generator for some (`tunewiz rewordings --generate --train`: ones that train)."))
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        self.show_detail()

    def current_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        rewording_id = self.current_id()
        detail = self.query_one("#rewording-detail", Static)
        if rewording_id is None:
            detail.update("")
            return
        item = self.store.get(rewording_id)
        pair = self.pairs.get(item.pair_id)
        detail.update(f"Reworded: {item.question}\nPair's Q: {item.made_from}\n"
                      f"Answer:   {pair.answer if pair else '(the pair was deleted)'}")

    def _writable(self) -> bool:
        try:
            self.project.check_writable()
        except TunewizError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return False
        return True

    def action_set_status(self, status: str) -> None:
        rewording_id = self.current_id()
        if rewording_id is None or self.editing or not self._writable():
            return
        self.store.update(rewording_id, status=status)
        self.show_rows(keep=rewording_id)

    def action_edit(self) -> None:
        rewording_id = self.current_id()
        if rewording_id is None or self.editing or not self._writable():
            return
        self.editing = rewording_id
        field = self.query_one("#rewording-edit", Input)
        field.value = self.store.get(rewording_id).question
        field.display = True
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        from tunewiz.evalsets import edit_rewording

        if self.editing is None:
            return
        try:
            edit_rewording(self.store, self.editing, event.value)
        except TunewizError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        edited, self.editing = self.editing, None
        event.input.display = False
        self.show_rows(keep=edited)
        self.query_one(DataTable).focus()
        self.notify("Saved the edited rewording.")

    def action_close(self) -> None:
        if self.editing is not None:  # escape leaves the edit first, as in the pair editor
            self.editing = None
            self.query_one("#rewording-edit", Input).display = False
            self.query_one(DataTable).focus()
            return
        self.dismiss(None)

"""The first screen: start a new project, open one, or pick a recent one."""

from __future__ import annotations

from pathlib import Path

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from tunewiz.errors import TunewizError
from tunewiz.tui.recent import load_recent

SOURCES = [("A topic (an LLM writes them)", "topic"), ("My documents (an LLM writes them)", "documents"),
           ("A file I have (CSV, JSONL, JSON)", "file"), ("Decide later", "later")]


def create_new_project(folder: str, name: str, base_model: str, source: str, value: str) -> tuple[Path, str]:
    """Create a project as `tunewiz new` does (tunewiz.newproject); returns its folder and a one-line report."""
    from tunewiz.newproject import new_project, project_values

    if not folder.strip():
        raise TunewizError("give the new project a folder")
    if source == "later" and value.strip():  # typed without choosing what it is: a file, documents or a topic
        from tunewiz.newproject import guess_source

        source, value = guess_source(value)
    values = project_values(name=name, base_model=base_model, topic=value if source == "topic" else "",
                            documents=[value] if source == "documents" and value.strip() else None)
    made = new_project(folder.strip(), values, value.strip() if source == "file" and value.strip() else None)
    return made.project.root, made.imported.summary() if made.imported else ""


class WelcomeScreen(Screen):
    """Asks the app to open a project; stays when opening fails (the app shows why)."""

    BINDINGS = [
        Binding("ctrl+n", "focus_new", "New"),
        Binding("ctrl+o", "focus_open", "Open"),
        Binding("ctrl+r", "focus_recent", "Recent"),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="welcome"):
            yield Static("Fine-tune a small model on your own questions and answers, then run it in "
                         "llama.cpp or Ollama.", classes="intro")
            with Horizontal(id="welcome-columns"):
                with Vertical(id="new-project", classes="box"):
                    yield Label("New project", classes="box-title")
                    yield Input(placeholder="new folder, e.g. ~/cooking", id="new-folder")
                    yield Input(placeholder="name (default: folder name)", id="new-name")
                    yield Input("smollm2-135m", placeholder="base model", id="new-base-model")
                    yield Select(SOURCES, value="later", allow_blank=False, id="new-source")
                    yield Input(placeholder="topic, documents or a file", id="new-value")
                    yield Button("Create (enter)", variant="primary", id="create")
                with Vertical(id="open-project", classes="box"):
                    yield Label("Open a project", classes="box-title")
                    yield Input(placeholder="project folder", id="open-folder")
                    yield Button("Open (enter)", id="open")
                    yield Label("Recent", classes="box-title")
                    recent = load_recent()
                    yield OptionList(*[Option(str(p), id=str(p)) for p in recent], id="recent")
                    if not recent:
                        yield Static("(none yet)", classes="muted")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "tunewiz"
        self.sub_title = "welcome"
        recent = self.query_one("#recent", OptionList)
        (recent if recent.option_count else self.query_one("#new-folder")).focus()

    def action_focus_new(self) -> None:
        self.query_one("#new-folder").focus()

    @on(events.Key)
    def _typing_starts_a_new_project(self, event: events.Key) -> None:
        """Letters typed on the recent list (which has the focus when there are recent projects) are
        a new project's folder: they went nowhere, and Enter then opened the last project."""
        if self.focused is self.query_one("#recent") and event.is_printable and event.character.strip():
            event.stop()
            field = self.query_one("#new-folder", Input)
            selects, field.select_on_focus = field.select_on_focus, False  # or the next key replaces this one
            field.focus()
            field.insert_text_at_cursor(event.character)
            self.call_after_refresh(setattr, field, "select_on_focus", selects)

    def action_focus_open(self) -> None:
        self.query_one("#open-folder").focus()

    def action_focus_recent(self) -> None:
        self.query_one("#recent").focus()

    @on(Button.Pressed, "#create")
    @on(Input.Submitted, "#new-project Input")
    def create(self) -> None:
        value = lambda wid: self.query_one(wid, Input).value  # noqa: E731
        try:
            root, report = create_new_project(value("#new-folder"), value("#new-name"), value("#new-base-model"),
                                              str(self.query_one("#new-source", Select).value), value("#new-value"))
        except TunewizError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.notify(f"Created {root}" + (f"; {report}" if report else ""))
        self.app.open_project(root)

    @on(Button.Pressed, "#open")
    @on(Input.Submitted, "#open-folder")
    def open_typed(self) -> None:
        folder = self.query_one("#open-folder", Input).value.strip()
        if not folder:
            self.notify("Type the folder of a project to open.", severity="warning")
            return
        self.app.open_project(Path(folder).expanduser())

    @on(OptionList.OptionSelected, "#recent")
    def open_recent(self, event: OptionList.OptionSelected) -> None:
        self.app.open_project(Path(event.option.id))

"""The Textual wizard: `tunewiz` with no arguments, or `tunewiz open DIR`.

The app holds the open project and its write lock; every step is a pane of the
wizard screen that reads and writes the project through the headless core. Work
that takes time runs in thread workers (which touch the UI only through
`call_from_thread`) or in the detached training process.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding

from tunewiz.errors import TunewizError
from tunewiz.words import naming_project
from tunewiz.tui.glyphs import ASCII, GLYPHS


class TunewizApp(App):
    CSS_PATH = ["app.tcss"] + (["ascii.tcss"] if GLYPHS is ASCII else [])
    TITLE = "tunewiz"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]
    # The command palette is one more thing on a small screen; every action has its own key.
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, project_dir: str | Path | None = None, first_step: str = "data") -> None:
        super().__init__()
        self.project_dir = Path(project_dir) if project_dir else None
        self.first_step = first_step
        self.project = None
        self._status_timer = None

    MIN_SIZE = (80, 24)
    """The smallest terminal every step is laid out for."""

    def on_resize(self, event) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        """Say once per shrink when the terminal is smaller than the layout needs (it reflows on resize)."""
        small = width < self.MIN_SIZE[0] or height < self.MIN_SIZE[1]
        if small and not getattr(self, "_said_small", False):
            self.notify(f"This terminal is {width}x{height}; tunewiz is laid out for 80x24 or more, so some "
                        "text is cut. Enlarge the window: the screen reflows.", severity="warning", timeout=8)
        self._said_small = small

    def on_mount(self) -> None:
        self._check_size(self.size.width, self.size.height)
        # After the app's start-up: Textual batches every frame until its mount is done and drops
        # them, so a screen pushed here would be built and rendered once for nothing, and the parts
        # a step builds after its first frame (the Data step's settings) would be built before it.
        self.call_later(self._first_screen)

    def _first_screen(self) -> None:
        if self.project_dir is None:
            self.show_welcome()
        else:
            self.open_project(self.project_dir)

    def show_welcome(self) -> None:
        from tunewiz.tui.screens.welcome import WelcomeScreen

        if not any(isinstance(s, WelcomeScreen) for s in self.screen_stack):
            self.push_screen(WelcomeScreen())

    # -- the project

    def open_project(self, folder: Path) -> bool:
        """Load and lock a project and show the wizard; on failure say why in a dialog."""
        from tunewiz.project import Project
        from tunewiz.tui.recent import remember
        from tunewiz.tui.screens.wizard import WizardScreen
        from tunewiz.tui.widgets.dialogs import MessageDialog

        try:
            project = Project.load(folder).open_read_only_if_locked("tunewiz tui")
        except TunewizError as exc:
            if self.project is None:
                self.show_welcome()
            self.push_screen(MessageDialog("Cannot open the project", str(exc)))
            return False
        if self.project is not None:
            self.project.unlock()
        self.project = project
        remember(project.root)
        wizard = WizardScreen(self.first_step)
        if len(self.screen_stack) > 1:
            self.switch_screen(wizard)
        else:
            self.push_screen(wizard)
        if project.read_only:
            self.notify(f"Opened read-only: the project is {project.read_only}. Changes are refused until you "
                        "reopen it after that one closes.", severity="warning", timeout=15)
        return True

    def for_shell(self, text: str) -> str:
        """`text` with the commands it names carrying -p and the project's folder, when the wizard was not
        started inside that folder (a command copied into this shell would find no project there)."""
        if self.project is None:
            return text
        root = self.project.root
        try:
            inside = Path.cwd().resolve().is_relative_to(root.resolve())
        except OSError:
            inside = False
        return text if inside else naming_project(text, str(root))

    def notify(self, message, *args, **kwargs) -> None:
        super().notify(self.for_shell(message) if isinstance(message, str) else message, *args, **kwargs)

    def on_unmount(self) -> None:
        from tunewiz.tui.background import stop_jobs

        stop_jobs()
        if self.project is not None:
            self.project.unlock()

    def refresh_status(self, delay: float = 0.5) -> None:
        """Recompute the step states for the sidebar soon (many quick changes make one refresh)."""
        if self.project is None:
            return
        if self._status_timer is not None:
            self._status_timer.stop()
        self._status_timer = self.set_timer(delay, self._compute_status)

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def _compute_status(self) -> None:
        from tunewiz.tui.background import JobCrashed, project_status_in_child

        try:
            # In a child process: it reads every pair, which would hold the GIL for seconds.
            states = project_status_in_child(str(self.project.root))
        except (TunewizError, JobCrashed) as exc:  # a broken file must not take the UI down: say so instead
            self.call_from_thread(self.notify, f"Cannot read the project state: {exc}", severity="error")
            return
        self.call_from_thread(self._show_states, states)

    def _show_states(self, states) -> None:
        from tunewiz.tui.screens.wizard import WizardScreen

        if isinstance(self.screen, WizardScreen):
            self.screen.show_states(states)

    def action_toggle_keys(self) -> None:
        """Show or hide the panel that lists every key of the focused step."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()


def run_app(project_dir: str | None) -> int:
    """Run the wizard on this terminal; returns the exit status for the CLI.

    After it closes, the commands that run the newest export are printed: they stay in the
    terminal's scrollback to copy (the wizard's own screen is gone then)."""
    app = TunewizApp(project_dir)
    app.run()
    if app.project is not None:
        print(last_export_commands(app.project.exports_dir), end="")
    return 0


def last_export_commands(exports_dir) -> str:
    """The run commands of the newest export, as printed on quit ('' when nothing was exported)."""
    from tunewiz.exports import commands_text, list_exports

    exports = list_exports(exports_dir)
    if not exports:
        return ""
    return f"Run the newest export ({exports[0].folder}):\n" + commands_text(exports[0])

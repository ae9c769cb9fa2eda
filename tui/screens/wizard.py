"""The main screen: the step sidebar on the left, the chosen step on the right."""

from __future__ import annotations

import importlib

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from tunewiz.status import STEPS, StepState
from tunewiz.tui.glyphs import GLYPHS

STATE_ICON = {state: GLYPHS[state] for state in ("todo", "ready", "active", "done")}
TITLES = {"data": "Data", "review": "Review", "format": "Format", "hardware": "Hardware",
          "hyperparameters": "Hyperparams", "train": "Train", "checkpoints": "Checkpoints", "export": "Export"}


PANES = {"data": "data.DataPane", "review": "review.ReviewPane", "format": "format.FormatPane",
         "hardware": "hardware.HardwarePane", "hyperparameters": "hyperparameters.HyperparametersPane",
         "train": "train.TrainPane", "checkpoints": "checkpoints.CheckpointsPane", "export": "export.ExportPane"}


def step_pane(key: str):
    """A new pane for one step, its module imported only then (so the first screen comes up fast)."""
    module, name = PANES[key].split(".")
    return getattr(importlib.import_module(f"tunewiz.tui.screens.{module}"), name)(id=key)


class WizardScreen(Screen):
    BINDINGS = [
        Binding("1", "step(0)", "Steps", key_display="1-8"),
        *[Binding(str(i + 1), f"step({i})", show=False) for i in range(1, len(STEPS))],
        # F1-F8 work from anywhere, a text field included (digits there are text); they reach the
        # app over SSH, in tmux and in macOS Terminal, where Alt combinations often do not.
        *[Binding(f"f{i + 1}", f"step({i})", show=False, priority=True) for i in range(len(STEPS))],
        Binding("escape", "focus_sidebar", "Sidebar", show=False),
        Binding("question_mark", "app.toggle_keys", "Keys", key_display="?"),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]

    def __init__(self, first_step: str = "data") -> None:
        super().__init__()
        self.first_step = first_step
        self.states: dict[str, StepState] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="sidebar"):
                yield OptionList(*[Option(self._prompt(i, key, "todo"), id=key) for i, key in enumerate(STEPS)],
                                 id="steps")
            with Vertical(id="main"):
                yield Static("", id="step-summary", markup=False)
                # Only the first step's pane is built now; the others when first shown (fast start).
                with ContentSwitcher(initial=self.first_step, id="panes"):
                    yield step_pane(self.first_step)
        yield Footer()

    @staticmethod
    def _prompt(index: int, key: str, state: str) -> str:
        return f"{index + 1} {STATE_ICON.get(state, '?')} {TITLES[key]}"

    def on_mount(self) -> None:
        self.title = f"tunewiz · {self.app.project.name}"
        self.sub_title = str(self.app.project.root) + (" · READ-ONLY" if self.app.project.read_only else "")
        steps = self.query_one("#steps", OptionList)
        steps.highlighted = STEPS.index(self.first_step)
        steps.focus()
        self.app.refresh_status()
        self.call_after_refresh(self._into_first_step)

    def _into_first_step(self) -> None:
        """Into the first step at once: with the focus on the sidebar its keys (i imports...) did nothing
        until a step key was pressed, and what a newcomer typed was lost. Unless a step key came first (a
        quick typist, a slow machine): then that step keeps the focus its keys need."""
        if self.current_step != self.first_step:
            return
        self._shown(self.first_step)
        self.query_one(f"#panes > #{self.first_step}").focus_first()

    # -- the sidebar

    def show_states(self, states: list[StepState]) -> None:
        """Called by the app with a fresh `project_status` (computed in a worker)."""
        steps = self.query_one("#steps", OptionList)
        self.states = {s.key: s for s in states}
        for index, state in enumerate(states):
            steps.replace_option_prompt(state.key, self._prompt(index, state.key, state.state))
        self._show_summary(self.current_step)

    @property
    def current_step(self) -> str:
        return self.query_one("#panes", ContentSwitcher).current or self.first_step

    def _show_summary(self, key: str) -> None:
        state = self.states.get(key)
        self.query_one("#step-summary", Static).update(
            f"{TITLES[key]}: {state.state} · {state.summary}" if state else TITLES[key])

    def _shown(self, key: str) -> None:
        self._show_summary(key)
        self.query_one(f"#panes > #{key}").on_step_shown()

    @on(OptionList.OptionHighlighted, "#steps")
    async def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        await self.go(event.option.id, focus=False)

    @on(OptionList.OptionSelected, "#steps")
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        await self.go(event.option.id, focus=True)

    async def go(self, key: str, focus: bool = True) -> None:
        """Show a step (any step is reachable, whatever the state of the others)."""
        switcher = self.query_one("#panes", ContentSwitcher)
        if not switcher.query_children(f"#{key}"):
            await switcher.mount(step_pane(key))
        if switcher.current != key:
            switcher.current = key
            self._shown(key)
        steps = self.query_one("#steps", OptionList)
        if steps.highlighted != STEPS.index(key):
            with self.prevent(OptionList.OptionHighlighted):
                steps.highlighted = STEPS.index(key)
        if focus:
            self.query_one(f"#panes > #{key}").focus_first()

    async def action_step(self, index: int) -> None:
        await self.go(STEPS[index])

    def action_focus_sidebar(self) -> None:
        self.query_one("#steps").focus()

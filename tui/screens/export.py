"""Export: merge the picked checkpoint, convert to GGUF, smoke-test, the commands to run it, and a chat.

Everything that loads a model (the export itself, the chat comparing the base
model with the fine-tuned one) runs in child processes: the UI never imports torch.
"""

from __future__ import annotations

import threading

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, RichLog, Static

from tunewiz.errors import TunewizError
from tunewiz.tui.screens.base import StepPane, writes
from tunewiz.tui.widgets.settings_form import SettingsForm


def run_commands(project, export_name: str) -> str:
    """The commands that run an export (the same text as its README-run.txt), to copy."""
    from tunewiz.exports import commands_text, read_manifest

    manifest = read_manifest(project.exports_dir / export_name)
    if manifest is None:
        return f"(nothing exported as {export_name!r} yet: export first, then the commands appear here)"
    return commands_text(manifest)


def smoke_report(project, export_name: str) -> str:
    """The export's smoke-test.txt (the GGUF's answers against the merged model's), if it has one."""
    from tunewiz.export.smoke import SMOKE_TXT

    path = project.exports_dir / export_name / SMOKE_TXT
    try:
        return path.read_text(encoding="utf-8").rstrip()
    except FileNotFoundError:
        return f"(no {path} yet: it is written by an export)"
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


class ExportPane(StepPane):
    STEP = "export"
    BINDINGS = [Binding("ctrl+g", "export", "Export"), Binding("ctrl+t", "chat", "Chat"),
                Binding("ctrl+u", "push", "Push"), Binding("escape", "stop_answer", "Stop answer", show=False)]
    ANSWER_LABELS = {"base": "base>       ", "tuned": "fine-tuned> "}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chat_session = None
        self._chat_lock = threading.Lock()  # one question at a time through the one child
        self._answering = False
        self._stopped = False  # Esc ended the answer in progress

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="export-summary", markup=False)
            yield SettingsForm(self.project, "export", id="export-form")
            yield Label("Progress", classes="box-title", id="export-progress-title")
            yield RichLog(id="export-log", max_lines=200, markup=False, wrap=True, min_width=1)
            yield Label("Run it (copy these)", classes="box-title", id="export-run-title")
            yield Static("", id="export-commands", markup=False)
            yield Label("Push to the Hugging Face Hub (the repository, then Enter; private; token: HF_TOKEN or "
                        "`hf auth login`)", classes="box-title")
            yield Input(placeholder="repository: user/name", id="push-repo")
            yield Label("Smoke test", classes="box-title")
            yield Static("", id="export-smoke", markup=False)
            yield Label("Chat: base model beside fine-tuned (ctrl+t; Esc stops an answer)", classes="box-title")
            yield Input(placeholder="a question, then enter", id="chat-question")
            yield RichLog(id="chat-log", max_lines=500, markup=False, wrap=True, min_width=1)
            yield Static("", id="chat-answer", markup=False)

    @property
    def export_name(self) -> str:
        return self.project.config.export.name or self.project.name

    def on_step_shown(self) -> None:
        cfg = self.project.config.checkpoint
        self.query_one("#export-summary", Static).update(
            f"Exports checkpoint '{cfg.pick}' of run {cfg.run or '(latest)'} to exports/{self.export_name}/ "
            "· ctrl+g starts")
        self.query_one("#export-commands", Static).update(run_commands(self.project, self.export_name))
        self.query_one("#export-smoke", Static).update(smoke_report(self.project, self.export_name))

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.on_step_shown()
        self.project_changed()

    @writes
    def action_export(self) -> None:
        self.query_one("#export-log", RichLog).write(
            "Starting the export (it runs inside the wizard: closing it or the terminal stops it; "
            "`tunewiz export` in tmux or under nohup does not stop) ...")
        # The progress and the result are below the form: at 80x24 out of sight unless scrolled to.
        self.query_one("#export-progress-title").scroll_visible(top=True)
        self.export()

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self) -> None:
        from tunewiz.tui.background import JobCrashed, stream_job

        log = lambda text: self.app.call_from_thread(self.query_one("#export-log", RichLog).write, text)  # noqa: E731
        finished = False
        try:
            stream_job("export", str(self.project.root), log)
            finished = True
        except (TunewizError, JobCrashed) as exc:
            log(f"export failed: {exc}")
            self.app.call_from_thread(self.notify, f"Export failed: {exc}", severity="error")
        else:
            self.app.call_from_thread(self.notify, "Export finished.")
            self.close_chat()  # the next question loads the new export
        self.app.call_from_thread(self.on_step_shown)
        if finished:  # the commands to run it, in sight (a failure leaves its message in sight)
            self.app.call_from_thread(lambda: self.query_one("#export-run-title").scroll_visible(top=True))
        self.app.call_from_thread(self.project_changed)

    @writes
    def action_push(self) -> None:
        repo = self.query_one("#push-repo", Input).value.strip()
        if not repo:
            self.query_one("#push-repo", Input).focus()
            self.notify("Type the repository (user/name), then Enter.", severity="warning")
            return
        self.query_one("#export-log", RichLog).write(f"Pushing the newest export to {repo} ...")
        self.push(repo)

    @on(Input.Submitted, "#push-repo")
    def _push_submitted(self) -> None:
        self.action_push()

    @work(thread=True, exclusive=True, group="push", exit_on_error=False)
    def push(self, repo: str) -> None:
        from tunewiz.tui.background import JobCrashed, stream_job

        log = lambda text: self.app.call_from_thread(self.query_one("#export-log", RichLog).write, text)  # noqa: E731
        try:
            stream_job("push", {"root": str(self.project.root), "repo": repo}, log)
        except (TunewizError, JobCrashed) as exc:
            log(f"push failed: {exc}")
            self.app.call_from_thread(self.notify, f"Push failed: {exc}", severity="error")
        else:
            self.app.call_from_thread(self.notify, "Pushed.")

    # -- chat

    def action_chat(self) -> None:
        self.query_one("#chat-question", Input).focus()

    @on(Input.Submitted, "#chat-question")
    def _ask(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        event.input.value = ""
        self.query_one("#chat-log", RichLog).write(f"you>        {question}")
        self.ask(question)

    @work(thread=True, group="chat", exit_on_error=False)
    def ask(self, question: str) -> None:
        from tunewiz.tui.background import ChatSession, JobCrashed

        write = lambda text: self.app.call_from_thread(self.query_one("#chat-log", RichLog).write, text)  # noqa: E731
        show = lambda text: self.app.call_from_thread(self.query_one("#chat-answer", Static).update, text)  # noqa: E731
        with self._chat_lock:
            self._answering, self._stopped = True, False
            label, answer = "", ""
            try:
                if self.chat_session is None:
                    write("(loading the base and the fine-tuned model in the background ...)")
                    self.chat_session = ChatSession(str(self.project.root), self.project.config.export.chat_max_tokens)
                    write(self.chat_session.description)
                for side, piece in self.chat_session.ask(question):
                    label = self.ANSWER_LABELS[side]
                    if piece is None:  # this side's answer is whole: into the log
                        write(f"{label}{answer}")
                        label, answer = "", ""
                    else:
                        answer += piece
                    show(f"{label}{answer}")
            except (TunewizError, JobCrashed) as exc:  # no run, no checkpoint, ... or a bug (logged)
                self.close_chat()
                show("")
                if self._stopped:
                    write(f"{label}{answer} (stopped; the next question loads the models again)")
                else:
                    write(f"chat failed: {exc}")
            finally:
                self._answering = False

    def action_stop_answer(self) -> None:
        """Esc: stop the answer being generated (its process ends); otherwise back to the step list."""
        session = self.chat_session
        if self._answering and session is not None:
            self._stopped = True
            session.stop()
        else:
            self.screen.action_focus_sidebar()

    def close_chat(self) -> None:
        session, self.chat_session = self.chat_session, None
        if session is not None:
            session.close()

    def on_unmount(self) -> None:
        self.close_chat()

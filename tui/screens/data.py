"""Data: import files of pairs; generate pairs with an LLM; models already on this machine; the generator's
settings."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tunewiz.tui.screens.base import StepPane, shows_errors, writes
from tunewiz.tui.widgets.settings_form import SettingsForm


MAX_PATH_CHARS = 1024
"""Longer than any path a person types or drops: what was pasted is something else."""


class DataPane(StepPane):
    STEP = "data"
    # x and c are named in the Generate box's title: the footer keeps room for the step keys at 80 columns.
    BINDINGS = [Binding("i", "focus_import", "Import"), Binding("g", "generate", "Generate"),
                Binding("x", "stop_generation", "Stop", show=False),
                Binding("c", "test_connection", "Test provider", show=False),
                Binding("l", "find_models", "Models"), Binding("d", "download_model", "Download")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stop_event = None
        self.local_models: list = []
        self.downloading = False
        """From `d` to the download's end (or the question's no): a second `d` is refused meanwhile."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Import a file of pairs (CSV, JSONL, Alpaca/ShareGPT/OpenAI JSON)", classes="box-title")
            with Horizontal(classes="row"):
                yield Input(placeholder="path to a file", id="import-path")
                yield Button("Import", id="import")
            yield Static("", id="import-report", markup=False)
            yield Label("Generate pairs with an LLM (g starts, x stops, c tests the provider)", classes="box-title")
            yield Static("Not generating.", id="generate-progress", markup=False)
            yield Label("Local models (l finds them, Enter uses one, d downloads one)", classes="box-title")
            yield Static("Not looked yet. Without one, the embedded provider serves the shipped SmolLM2.",
                         id="local-models-note", markup=False)
            found = OptionList(id="local-models")
            found.display = False
            yield found
            yield Label("Generator settings", classes="box-title")
            yield Vertical(id="generator-box", classes="settings-form")

    def on_mount(self) -> None:
        # The 25 generator fields are built right after the first paint, so the wizard appears at once.
        self.call_after_refresh(self._mount_settings)

    def _mount_settings(self) -> None:
        self.query_one("#generator-box").mount(SettingsForm(self.project, "generator", id="generator-form"))

    def action_focus_import(self) -> None:
        self.query_one("#import-path").focus()

    @writes
    @on(Button.Pressed, "#import")
    @on(Input.Submitted, "#import-path")
    def start_import(self) -> None:
        text = self.query_one("#import-path", Input).value.strip()
        if not text:
            self.notify("Type the path of a file to import.", severity="warning")
            return
        from tunewiz.imports import typed_path

        if len(text) > MAX_PATH_CHARS or "\n" in text:
            self.notify(f"That is {len(text):,} characters, not a file's path (the file's contents pasted?): "
                        "type the path, or drop the file on the terminal.", severity="error", timeout=10)
            return
        path = typed_path(text)
        self.query_one("#import-report", Static).update(f"Importing {path} ...")
        self.import_file(path)

    @work(thread=True, exclusive=True, group="import", exit_on_error=False)
    def import_file(self, path: Path) -> None:
        from tunewiz.dataset import PairStore
        from tunewiz.errors import TunewizError
        from tunewiz.imports import import_file

        try:
            report = import_file(PairStore(self.project.pairs_path), path)
        except (TunewizError, OSError) as exc:
            self.app.call_from_thread(self._import_failed, str(exc))
            return
        lines = report.notices + [report.summary()] + [f"  {p.where}: {p.reason}" for p in report.problems[:20]]
        if len(report.problems) > 20:
            lines.append(f"  ... and {len(report.problems) - 20} more")
        self.app.call_from_thread(self._imported, "\n".join(lines))

    def _import_failed(self, message: str) -> None:
        self.query_one("#import-report", Static).update(message)
        self.notify(message if len(message) <= 400 else f"{message[:400]}…", severity="error", timeout=10)

    def _imported(self, text: str) -> None:
        self.query_one("#import-report", Static).update(text)
        self.notify(text.splitlines()[0])
        self.project_changed()

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.project_changed()

    # -- models already on this machine

    @work(thread=True, exclusive=True, group="local-models", exit_on_error=False)
    def action_find_models(self) -> None:
        from tunewiz.generators.discovery import find_local_models, propose
        from tunewiz.hardware import detect

        self.app.call_from_thread(self.query_one("#local-models-note", Static).update,
                                  "Looking (servers on the usual ports, the Hugging Face cache, LM Studio, Ollama) ...")
        models, skipped = find_local_models()
        proposed = propose(models, detect().ram_available_mb * 2**20) if models else None
        self.app.call_from_thread(self._show_models, models, len(skipped), proposed)

    def _show_models(self, models: list, skipped: int, proposed) -> None:
        self.local_models = models
        found = self.query_one("#local-models", OptionList)
        found.clear_options()
        found.display = bool(models)
        skipped_text = f" ({skipped} files skipped: not chat models, later shards or unreadable)" if skipped else ""
        if not models:
            self.query_one("#local-models-note", Static).update(
                "No local model found" + skipped_text + ": the embedded provider serves the shipped SmolLM2. "
                "d downloads a better one (1-2 GB, online).")
            return
        found.add_options([Option(self._model_line(m, m is proposed), id=str(i)) for i, m in enumerate(models)])
        if proposed is None:
            advice = "None is proposed: each needs more memory than is available (or is over 8B)."
        else:
            advice = f"Proposed: {proposed.label} ({proposed.provider})."
            found.highlighted = models.index(proposed)
        self.query_one("#local-models-note", Static).update(f"Found {len(models)}{skipped_text}. {advice}")
        found.focus()

    @staticmethod
    def _model_line(model, proposed: bool) -> str:
        size = f" · {model.size_bytes / 1e9:.1f} GB" if model.size_bytes else ""
        params = f" · {model.params_b:g}B" if model.params_b else ""
        return f"{'* ' if proposed else '  '}{model.label} · {model.provider} · {model.where}{size}{params}"

    @writes
    @shows_errors
    @on(OptionList.OptionSelected, "#local-models")
    def use_local_model(self, event: OptionList.OptionSelected) -> None:
        self._use(self.local_models[int(event.option.id)])

    def _use(self, chosen) -> None:
        """Make a local model the project's generator, and say so."""
        from tunewiz.generators.discovery import use_model

        use_model(self.project, chosen)
        self.query_one("#generator-form", SettingsForm).reload()
        self.query_one("#local-models-note", Static).update(
            f"The project generates with {chosen.label} ({chosen.provider}) now.")
        self.notify(f"The project generates with {chosen.label} ({chosen.provider}) now.")
        self.project_changed()

    @writes
    def action_download_model(self) -> None:
        if self.downloading:
            self.notify("A download is going on; it goes on until it ends (quitting stops it).", severity="warning")
            return
        self.downloading = True
        self.propose_download()

    @work(thread=True, exclusive=True, group="download", exit_on_error=False)
    def propose_download(self) -> None:
        """The recommended instruct GGUF for this machine's memory, asked before anything is fetched."""
        from tunewiz.errors import TunewizError
        from tunewiz.generators.discovery import download_to_propose
        from tunewiz.hardware import detect

        try:
            wanted = download_to_propose(detect().ram_available_mb * 2**20)
        except TunewizError as exc:
            self.app.call_from_thread(self._download_failed, str(exc))
            return
        self.app.call_from_thread(self._ask_download, wanted)

    def _ask_download(self, wanted) -> None:
        from tunewiz.tui.widgets.dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if yes:
                self.query_one("#local-models-note", Static).update(f"Downloading {wanted.filename} ...")
                self.fetch(wanted)
            else:
                self.downloading = False

        self.app.push_screen(ConfirmDialog(
            f"Download {wanted.repo}/{wanted.filename} (about {wanted.size_bytes / 1e9:.1f} GB) into the Hugging "
            "Face cache, check it against the SHA-256 the hub publishes, and generate with it?"), answered)

    @work(thread=True, exclusive=True, group="download", exit_on_error=False)
    def fetch(self, wanted) -> None:
        import time

        from textual.worker import get_current_worker

        from tunewiz.errors import TunewizError
        from tunewiz.generators.discovery import download

        worker, shown = get_current_worker(), [0.0]

        def progress(done: int, total: int) -> None:
            if worker.is_cancelled:  # the wizard is quitting: stop (the hub library resumes the part next time)
                raise InterruptedError("the wizard quit")
            if time.monotonic() - shown[0] >= 0.5 or done == total:  # the UI needs no more than this
                shown[0] = time.monotonic()
                share = f"{done / total:.0%} of {total / 1e9:.1f} GB" if total else f"{done / 1e6:,.0f} MB"
                self.app.call_from_thread(self._download_progress, f"Downloading {wanted.filename}: {share}")

        try:
            path = download(wanted, progress=progress)
        except TunewizError as exc:
            self.app.call_from_thread(self._download_failed, str(exc))
            return
        self.app.call_from_thread(self._download_finished, wanted, path)

    def _download_progress(self, text: str) -> None:
        self.query_one("#local-models-note", Static).update(text)

    def _download_failed(self, message: str) -> None:
        self.downloading = False
        self.query_one("#local-models-note", Static).update(message)
        self.notify(message, severity="error", timeout=10)

    def _download_finished(self, wanted, path) -> None:
        self.downloading = False
        self._downloaded(wanted, path)

    @writes
    @shows_errors
    def _downloaded(self, wanted, path) -> None:
        from tunewiz.generators.discovery import downloaded

        self._use(downloaded(wanted, path))

    # -- generation

    @writes
    def action_generate(self) -> None:
        import threading

        if self.stop_event is not None:
            self.notify("Already generating; x stops it.", severity="warning")
            return
        self.stop_event = threading.Event()
        self.query_one("#generate-progress", Static).update("Starting ...")
        # Unlike training, generation runs inside the wizard: say so before it starts, not after it is lost.
        self.notify("Generation runs inside the wizard: closing it or the terminal stops it (what is done is kept, "
                    "and g goes on later). For a long run, `tunewiz generate` in tmux or under nohup.", timeout=10)
        self.generate(self.stop_event)

    def action_stop_generation(self) -> None:
        if self.stop_event is None:
            self.notify("Not generating.", severity="warning")
            return
        self.stop_event.set()
        self.query_one("#generate-progress", Static).update("Stopping after the requests in flight ...")

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def generate(self, stop) -> None:
        from tunewiz.errors import TunewizError
        from tunewiz.generators.runner import generate_pairs

        try:
            summary = generate_pairs(self.project, on_event=lambda e: self.app.call_from_thread(self._progress, e),
                                     stop=stop)
        except (TunewizError, OSError, ValueError) as exc:
            self.app.call_from_thread(self._generation_done, f"Generation failed: {exc}", True)
            return
        self.app.call_from_thread(self._generation_done, "\n".join(summary.lines()), False)

    def _progress(self, event) -> None:
        cost = f"${event.cost:.4f}" if event.cost is not None else "cost unknown"
        text = (f"{event.pairs_added} pairs · {event.pairs_per_min:.1f} pairs/min · "
                f"{event.unit}s {event.chunks_done}/{event.chunks_total} ({event.chunks_failed} failed) · "
                f"tokens {event.tokens_in:,} in / {event.tokens_out:,} out · {cost} · "
                f"{event.retries} retries")
        if event.message:
            text += f"\n{event.message}"
        self.query_one("#generate-progress", Static).update(text)

    def _generation_done(self, text: str, failed: bool) -> None:
        self.stop_event = None
        self.query_one("#generate-progress", Static).update(text)
        self.notify(text.splitlines()[0], severity="error" if failed else "information")
        self.project_changed()

    @work(thread=True, exclusive=True, group="connection", exit_on_error=False)
    def action_test_connection(self) -> None:
        from tunewiz.errors import TunewizError
        from tunewiz.generators.providers import test_connection

        self.app.call_from_thread(self.notify, "Testing the provider ...")
        try:
            message = test_connection(self.project)
        except (TunewizError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Provider test failed: {exc}", severity="error", timeout=10)
            return
        self.app.call_from_thread(self.notify, message, timeout=10)

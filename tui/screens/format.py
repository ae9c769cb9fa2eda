"""Format: the chat template, the system prompt, the validation split, and a rendered sample.

The sample is rendered by `tunewiz.templates.render_sample`, the same function
training uses, so what is shown is what the model is trained on; the answer part
(the only tokens the loss is computed on) is highlighted. Token counts and the
template family 'auto' resolves to come from the base model's tokenizer, loaded
in a child process (`tunewiz.tui.background preview`); until it answers, a
chars/4 estimate stands in.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from tunewiz.tui.glyphs import GLYPHS
from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm

EXAMPLE = ("What is the boiling point of water at sea level?", "100 °C (212 °F).")


def sample_text(family: str, question: str, answer: str, system: str) -> Text:
    """The rendered sample with the trained-on answer part highlighted."""
    from tunewiz.templates import render_sample

    sample = render_sample(family, question, answer, system)
    text = Text()
    text.append(sample.prompt, style="dim")
    text.append(sample.completion, style="bold black on green")
    return text


class FormatPane(StepPane):
    STEP = "format"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Rendered sample (highlighted: the answer, the only part trained on)", classes="box-title")
            yield Static("", id="format-sample")
            yield Static("", id="format-counts", markup=False)
            yield Label("What do these pairs teach?", classes="box-title")
            yield Static("", id="format-kind", markup=False)
            yield SettingsForm(self.project, "dataset", keys=["kind"], id="kind-form")
            yield SettingsForm(self.project, "template", id="template-form")
            yield SettingsForm(self.project, "dataset", keys=["validation_fraction", "split_seed", "train_on"],
                               id="split-form")

    def on_step_shown(self) -> None:
        self.render_sample()
        self.show_kind()

    def show_kind(self) -> None:
        """One line on facts vs skill, with what the data looks like (the same rule a run applies)."""
        from tunewiz.dataset import PairStore, trainable
        from tunewiz.dataset import detect_kind

        try:
            pairs = trainable(PairStore(self.project.pairs_path), self.project.config.dataset.train_on)
        except OSError:
            pairs = []
        kind, why = detect_kind(pairs)
        self.query_one("#format-kind", Static).update(
            "facts: knowledge to recall (every pair trains; checked with reworded questions). skill: a style, "
            f"format or task (held-out pairs check it). These pairs look like {kind}: {why}.")

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.project_changed()
        self.render_sample()
        self.show_kind()

    @work(thread=True, exclusive=True, group="format-sample", exit_on_error=False)
    def render_sample(self) -> None:
        """Show an estimate at once, then the real tokens and template from the tokenizer."""
        from tunewiz.dataset import project_split

        cfg = self.project.config
        try:
            train, validation = project_split(self.project)
        except OSError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        pair = train[0] if train else (validation[0] if validation else None)
        question, answer = (pair.question, pair.answer) if pair else EXAMPLE
        system = (pair.system if pair and pair.system else "") or cfg.template.system_prompt
        # A placeholder until the tokenizer has loaded: 'auto' (the base model's own template) is
        # shown as ChatML, what SmolLM2 and most small models use, and tokens as chars/4.
        family = "chatml" if cfg.template.name == "auto" else cfg.template.name
        try:
            text = sample_text(family, question, answer, system)
        except ValueError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        lengths = [len(p.question) + len(p.answer) for p in train + validation]
        over = sum(1 for n in lengths if n / 4 > cfg.template.max_seq_len)
        counts = (f"template {family}{' (auto, guessed)' if cfg.template.name == 'auto' else ''} · "
                  f"{len(train)} train / {len(validation)} validation pairs · "
                  f"this sample {GLYPHS['about']}{len(text.plain) // 4} tokens (chars/4) · "
                  f"{GLYPHS['about']}{over} samples may exceed max_seq_len {cfg.template.max_seq_len} · "
                  "loading the tokenizer for real counts ...")
        self.app.call_from_thread(self._show, text, counts)
        if pair is None:
            return
        self._show_real_counts(len(train), len(validation))

    def _show_real_counts(self, n_train: int, n_validation: int) -> None:
        from tunewiz.errors import TunewizError
        from tunewiz.tui.background import JobCrashed, run_job

        cfg = self.project.config.template
        try:
            # The tokenizer needs transformers: in a child process, never in the UI.
            real = run_job("preview", str(self.project.root))
        except (TunewizError, JobCrashed) as exc:  # e.g. the base model cannot be found: say so, keep the estimate
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._show_counts, f"Real token counts unavailable: {exc}")
            return
        if get_current_worker().is_cancelled:
            return  # the settings changed meanwhile: a newer worker shows the newer sample
        text = Text()
        text.append(real["prompt"], style="dim")
        text.append(real["completion"], style="bold black on green")
        origin = " (auto: the base model's own)" if cfg.name == "auto" else ""
        limit = (f"{real['truncated']} truncated, {real['dropped']} dropped at max_seq_len {cfg.max_seq_len}"
                 f" (longest {real['max_tokens']} tokens)")
        counts = (f"template {real['family']}{origin} · {n_train} train / {n_validation} validation pairs · "
                  f"this sample {real['prompt_tokens']} prompt + {real['answer_tokens']} answer tokens · "
                  f"all pairs: {limit}")
        self.app.call_from_thread(self._show, text, counts)

    def _show(self, text: Text, counts: str) -> None:
        self.query_one("#format-sample", Static).update(text)
        self.query_one("#format-counts", Static).update(counts)

    def _show_counts(self, counts: str) -> None:
        self.query_one("#format-counts", Static).update(counts)

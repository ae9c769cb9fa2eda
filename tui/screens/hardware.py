"""Hardware: what was detected, the memory estimate for the current choices, the advice."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from tunewiz.tui.screens.base import StepPane
from tunewiz.tui.widgets.settings_form import SettingsForm


class HardwarePane(StepPane):
    STEP = "hardware"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("Detected", classes="box-title")
            yield Static("Detecting ...", id="hardware-report", markup=False)
            yield SettingsForm(self.project, "hardware", id="hardware-form")

    def on_step_shown(self) -> None:
        self.query_one("#hardware-form", SettingsForm).reload()
        self.detect()

    @on(SettingsForm.Saved)
    def _saved(self) -> None:
        self.project_changed()
        self.detect()

    @work(thread=True, exclusive=True, group="hardware", exit_on_error=False)
    def detect(self) -> None:
        try:
            text = hardware_report(self.project)
        except Exception as exc:  # detection must never take the UI down
            text = f"Hardware detection failed: {exc}"
        self.app.call_from_thread(self.query_one("#hardware-report", Static).update, text)


def hardware_report(project) -> str:
    """Detected hardware, the recommendation and the memory estimate (reads /proc and nvidia-smi, no torch)."""
    from tunewiz.hardware import check_fits, detect, recommend

    hw = detect()
    lines = [f"CPU cores: {hw.cpu_cores}   RAM: {hw.ram_total_mb:,} MB ({hw.ram_available_mb:,} MB available)"]
    lines += [f"GPU {g.index}: {g.name}, {g.free_mb:,} of {g.total_mb:,} MB free" for g in hw.gpus]
    if hw.mps:
        lines.append("Apple silicon GPU (MPS)")
    if not hw.gpus and not hw.mps:
        lines.append("No GPU found.")
    rec = recommend(project, hw)
    lines.append(f"Recommended: device {rec.device}, precision {rec.precision}, batch size {rec.batch_size}, "
                 f"threads {rec.threads}")
    lines += [f"  - {note}" for note in rec.notes]
    cfg = project.config
    lines.append(f"Estimate for batch {cfg.hyperparameters.batch_size}, max_seq_len {cfg.template.max_seq_len}:")
    try:
        est = check_fits(project, gpus=cfg.hardware.gpus, allow=False, hw=hw)
    except Exception as exc:  # a refusal is the warning to show
        lines.append(f"WARNING: {exc}")
    else:
        if est is not None:
            lines += est.lines() + [f"  available      {rec.available_mb:10,.0f} MB"]
        else:
            lines.append("  unknown until the base model is downloaded")
    return "\n".join(lines)

"""Where a project stands, step by step, read from its files alone.

The CLI's `tunewiz status` prints it and the TUI's step sidebar shows it, so both
always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewiz.pairstats import pair_summary
from tunewiz.project import Project
from tunewiz.runs import list_runs
from tunewiz.words import counted

STEPS = ("data", "review", "format", "hardware", "hyperparameters", "train", "checkpoints", "export")


@dataclass
class StepState:
    key: str
    title: str
    state: str
    """'todo', 'ready', 'active' (something running) or 'done'."""
    summary: str


def project_status(project: Project) -> list[StepState]:
    cfg = project.config
    pairs = pair_summary(project)  # counts from a cache: under a second on 200k pairs
    counts, total = pairs.counts, pairs.total
    steps = []

    trainable = pairs.train + pairs.validation  # what a run would use: not rejected (accepted only, if train_on says)
    source = cfg.generator.topic and f"topic '{cfg.generator.topic}'" or (
        cfg.generator.documents and counted(len(cfg.generator.documents), "document path")) or "no generation source"
    unusable = "" if trainable or not total else (
        ", none to train on: all rejected" if counts["rejected"] == total else
        ", none to train on: dataset.train_on = accepted and none is")
    unreadable = "" if not pairs.unreadable else (
        f"; {counted(pairs.unreadable, 'unreadable line')} in {cfg.dataset.pairs_file} (line "
        + ", ".join(map(str, pairs.unreadable_lines[:5])) + (", ..." if pairs.unreadable > 5 else "")
        + f"): fix or remove {'it' if pairs.unreadable == 1 else 'them'}")
    steps.append(StepState("data", "Data", "done" if trainable else "todo",
                           f"{counted(total, 'pair')}{unusable} ({source}; generator: {cfg.generator.provider})"
                           + unreadable))
    reviewed = counts["accepted"] + counts["rejected"]
    steps.append(StepState("review", "Review", "done" if total and not counts["pending"] else ("ready" if total else "todo"),
                           f"{counts['accepted']} accepted, {counts['pending']} pending, {counts['rejected']} rejected"
                           + (f" ({reviewed}/{total} reviewed)" if total else "")))
    steps.append(StepState("format", "Format", "done" if trainable else "todo",
                           f"template {cfg.template.name}, {pairs.train} train / {pairs.validation} validation pairs"))
    steps.append(StepState("hardware", "Hardware", "done", _hardware_summary(cfg.hardware)))
    hp = cfg.hyperparameters
    steps.append(StepState("hyperparameters", "Hyperparameters", "done",
                           "preset auto: set at train time"
                           if hp.preset == "auto" else
                           f"preset {hp.preset}: r={hp.lora_r}, lr={hp.learning_rate:g}, "
                           + (f"{hp.max_steps} steps" if hp.max_steps else f"{hp.epochs:g} epochs")))
    runs = list_runs(project.runs_dir)
    if runs:
        last = runs[-1]
        status = last.read_status()
        state = last.state()
        steps.append(StepState("train", "Train", "active" if state in ("starting", "running", "stopping") else "done",
                               f"{counted(len(runs), 'run')}; latest {last.id}: {state}, step {status.step}/{status.max_steps}"
                               + (f" ({status.message})" if status.message else "")))
        complete = last.complete_checkpoints()
        pick = cfg.checkpoint.pick
        steps.append(StepState("checkpoints", "Checkpoints", "done" if complete else "todo",
                               f"{len(complete)} complete checkpoints in {last.id}; pick: {pick}"))
    else:
        steps.append(StepState("train", "Train", "ready" if trainable else "todo", "no runs yet"))
        steps.append(StepState("checkpoints", "Checkpoints", "todo", "no checkpoints yet"))
    # Hidden folders are exports being written (".name.partial-<pid>"), not exports.
    exports = sorted(p.name for p in project.exports_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if project.exports_dir.is_dir() else []
    steps.append(StepState("export", "Export", "done" if exports else "todo",
                           f"exports: {', '.join(exports)}" if exports else "nothing exported yet"))
    return steps


def _hardware_summary(hw) -> str:
    """The hardware settings that say something: "gpus 1" on a machine without one read as a GPU found."""
    parts = [f"device {hw.device}", f"precision {hw.precision}"]
    if hw.gpus > 1:
        parts.append(f"{hw.gpus} GPUs")
    if hw.quantization != "none":
        parts.append(f"quantization {hw.quantization}")
    if hw.sharding != "none":
        parts.append(f"sharding {hw.sharding}")
    return ", ".join(parts)

"""`tunewiz demo`: the whole job, offline, on the embedded default.

Copies the velmora-handbook example, imports its made-up facts, generates a few
pairs with the local model, fine-tunes SmolLM2-135M with LoRA on the CPU, picks
the best checkpoint, exports a q8_0 GGUF with a Modelfile, smoke-tests it and
prints base vs fine-tuned answers to the same questions. Every step is the same
function the CLI and the wizard call.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tunewiz.errors import TunewizError
from tunewiz.project import PROJECT_FILE, Project

EXAMPLE = "velmora-handbook"
FACTS_FILE = "handbook.csv"
COMPARE_QUESTIONS = 3


@dataclass
class DemoOptions:
    target: Path
    max_steps: int | None = None
    """Override the example's training length (a short demo for tests)."""
    generate: int | None = None
    """Pairs to generate with the local model (None: the example's setting; 0: skip)."""
    gguf_type: str = "q8_0"


def run_demo(options: DemoOptions, say: Callable[[str], None] = print) -> Project:
    from tunewiz.examples import example_path

    started = time.monotonic()
    total = 6

    def step(number: int, text: str) -> None:
        say(f"\n[{number}/{total}] {text}  ({time.monotonic() - started:.0f} s)")

    step(1, f"Creating a project from examples/{EXAMPLE} in {options.target}")
    project = _create(example_path(EXAMPLE), options.target)
    project.lock("tunewiz demo")
    from tunewiz.dataset import PairStore
    from tunewiz.imports import import_file

    report = import_file(PairStore(project.pairs_path), project.root / FACTS_FILE, status="accepted")
    say(report.summary() + " (accepted: the handbook's facts)")

    step(2, "Generating pairs with the embedded local model (offline, no key)")
    _generate(project, options.generate, say)

    step(3, "Fine-tuning SmolLM2-135M with LoRA on the CPU")
    if options.max_steps is not None:
        project.config.hyperparameters.max_steps = options.max_steps
        project.save()
    run = _train(project, say)

    step(4, "Picking the checkpoint that recalls the most facts, asked in other words")
    from tunewiz.checkpoints import pick_checkpoint, rank_checkpoints

    for line in checkpoint_summary(rank_checkpoints(run)):
        say(line)
    chosen = pick_checkpoint(project, "best", run.id)
    say(f"Picked checkpoint {chosen.step}.")

    step(5, f"Exporting: merged model, {options.gguf_type} GGUF, Modelfile, smoke test")
    from tunewiz.export import export_model

    result = export_model(project, on_progress=say, types=[options.gguf_type])
    if result.smoke:
        from tunewiz.export.smoke import readable

        say(readable(result.smoke).split("\n\n== ")[0].strip())

    step(6, "Base vs fine-tuned, same questions")
    _compare(project, say)

    project.unlock()
    say(f"\nDone in {time.monotonic() - started:.0f} s. Everything was written under {project.root}:")
    say(f"  project file   {project.file}")
    say(f"  pairs          {project.pairs_path}")
    say(f"  training run   {run.dir}")
    say(f"  export         {result.folder}")
    for path in sorted(result.folder.iterdir()):
        say(f"                 {path.name}")
    say(f"Next: tunewiz open {project.root}   (the wizard over this project)")
    return project


def checkpoint_summary(report) -> list[str]:
    """What the demo prints of the ranking: recall per checkpoint, the base model's, and why the pick."""
    lines = []
    if report.base and report.base.reworded:
        lines.append(f"  base model: {report.base.trained} trained questions, {report.base.reworded} reworded "
                     "questions recalled")
    for info in report.checkpoints:
        drift = f", everyday prompts broken {info.drift.broken}/{info.drift.total}" if info.drift else ""
        lines.append(f"  step {info.step:>4}: trained {info.trained or '-'}, reworded {info.reworded or '-'}"
                     f"{drift}{'  <- best' if info.best else ''}")
    lines.append(f"Best: {report.reason}")
    if report.overfit:
        lines.append(report.overfit.describe(report.patience))
    return lines


def _create(example: Path, target: Path) -> Project:
    if (target / PROJECT_FILE).exists():
        raise TunewizError(f"{target / PROJECT_FILE}: a project already exists here; nothing was changed "
                           "(give the demo another folder: tunewiz demo DIR)")
    if target.exists() and any(target.iterdir()):
        raise TunewizError(f"{target}: the folder is not empty; nothing was changed "
                           "(give the demo another folder: tunewiz demo DIR)")
    target.mkdir(parents=True, exist_ok=True)
    for name in (PROJECT_FILE, FACTS_FILE):
        shutil.copy2(example / name, target / name)
    return Project.load(target)


def _generate(project: Project, count: int | None, say: Callable[[str], None]) -> None:
    import sys

    from tunewiz.console import ProgressBar
    from tunewiz.generators.runner import generate_pairs

    if count == 0:
        say("Skipped (--generate 0).")
        return
    if count is not None:
        project.config.generator.num_pairs = count
        project.save()
    bar = ProgressBar(sys.stdout)
    try:
        summary = generate_pairs(project, on_event=bar.update)
    finally:
        bar.close()
    for line in summary.lines():
        say(line)
    # Said plainly whatever the small model wrote (its replies vary from run to run): the demo does not need them.
    if summary.pairs_added:
        say("The generated pairs stay 'pending' for you to review; this project trains on accepted pairs only.")
    elif summary.pairs_rejected:
        say("None of the generated pairs passed the checks (they are kept as rejected, for Review); the demo "
            "trains on the handbook's accepted facts either way.")
    else:
        say("The local model returned no usable pair this time (the counts above say why); the demo trains on "
            "the handbook's accepted facts either way.")


def _train(project: Project, say: Callable[[str], None]):
    from tunewiz.console import follow_with_progress
    from tunewiz.training.launch import start_run

    from tunewiz.recommend import TrainingPlan

    run = start_run(project)
    say(f"Run {run.id} started (log: {run.log_path})")
    for line in TrainingPlan.from_dict(run.read_spec().plan).lines():
        say(line)
    if follow_with_progress(run) != 0 or run.state() != "finished":
        raise TunewizError(f"training did not finish ({run.state()}: {run.read_status().message}); "
                           f"see {run.log_path}")
    return run


def _compare(project: Project, say: Callable[[str], None]) -> None:
    from tunewiz.chat import open_chat
    from tunewiz.dataset import PairStore

    tuned, base, _ = open_chat(project, compare=True)
    facts = [p for p in PairStore(project.pairs_path) if p.status == "accepted"][:COMPARE_QUESTIONS]
    for pair in facts:
        say(f"\nQ: {pair.question}")
        say(f"  reference:   {pair.answer}")
        say(f"  base:        {_one_line(base.answer(pair.question))}")
        say(f"  fine-tuned:  {_one_line(tuned.answer(pair.question))}")


def _one_line(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"

"""`tunewiz checkpoints`, `pick`, `export` and `chat`."""

from __future__ import annotations

import argparse

from tunewiz.cli.common import add_project_arg, open_project, table
from tunewiz.errors import TunewizError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checkpoints", help="list a run's checkpoints with their losses; the best is marked",
                       description="Every complete checkpoint of the picked run (default: the latest) with "
                                   "step, epoch, train loss (mean since the previous checkpoint), validation "
                                   "loss, trained and reworded questions recalled and everyday prompts "
                                   "answered. '*' marks the best for the kind of data, '>' the pick.")
    add_project_arg(p)
    p.add_argument("--run", default="", help="a run id (default: [checkpoint] run, else the latest run)")
    p.add_argument("--patience", type=int, default=3, metavar="K",
                   help="flag overfitting after K evaluations of rising validation loss (default 3)")
    p.add_argument("--samples", type=int, nargs="?", const=3, default=0, metavar="N",
                   help="also show each checkpoint's greedy answers to N held-out questions (default 3; "
                        "cached in the checkpoint folder)")
    p.set_defaults(handler=cmd_checkpoints)

    p = sub.add_parser("pick", help="pick the checkpoint to export: a step number or 'best'")
    add_project_arg(p)
    p.add_argument("pick", help="'best' (facts: most reworded questions recalled; skill: lowest validation "
                                "loss) or a step number")
    p.add_argument("--run", default="", help="a run id (default: the latest run)")
    p.set_defaults(handler=cmd_pick)

    p = sub.add_parser("export", help="merge the picked checkpoint and write GGUF files, a Modelfile and a smoke test",
                       description="Export the picked checkpoint to exports/<name>/: merged safetensors, "
                                   "GGUF files (export.gguf_types), an Ollama Modelfile, README-run.txt "
                                   "with the commands to run it, and a smoke test of each GGUF.")
    add_project_arg(p)
    p.add_argument("--types", help="GGUF types for this export, comma-separated (default: export.gguf_types)")
    p.add_argument("--name", default="", help="export folder name (default: export.name, else the project name)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing export of that name (the new one is written completely first)")
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke test")
    p.add_argument("--ollama", nargs="?", const="", default=None, metavar="TYPE",
                   help="then create the Ollama model (`ollama create`, from the best-quality GGUF exported "
                        "or TYPE's) and ask it one question (`ollama run`); needs `ollama` on PATH")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("push", help="upload an export to a Hugging Face Hub repository (private by default)",
                       description="Upload the LoRA adapter of an export (the newest, or --export NAME) with "
                                   "its model card and tokenizer; --merged adds the merged model (under "
                                   "merged/), --gguf the GGUF files and Modelfile. The token is $HF_TOKEN or "
                                   "the one `hf auth login` saved; $HF_ENDPOINT picks another hub. Needs "
                                   "pip install 'tunewiz[hub]'.")
    add_project_arg(p)
    p.add_argument("repo", help="the repository: USER/NAME, ORG/NAME, or NAME (under your user)")
    p.add_argument("--export", default="", metavar="NAME", help="the export folder (default: the newest)")
    p.add_argument("--merged", action="store_true", help="also upload the merged model")
    p.add_argument("--gguf", action="store_true", help="also upload the GGUF files and the Modelfile")
    p.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    p.set_defaults(handler=cmd_push)

    p = sub.add_parser("chat", help="ask the fine-tuned model questions (--compare: beside the base model)",
                       description="Ask the fine-tuned model (the newest export's GGUF, else the picked "
                                   "checkpoint) questions, each a fresh chat in the training template. "
                                   "An empty line or Ctrl-D ends.")
    add_project_arg(p)
    p.add_argument("--compare", action="store_true", help="answer with the base model too, side by side")
    p.add_argument("--gguf", help="a GGUF file to talk to instead of the newest export's")
    p.add_argument("-q", "--question", action="append", help="ask this and exit (repeatable)")
    p.set_defaults(handler=cmd_chat)


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _text(value) -> str:
    return "-" if value is None else str(value)


def _drift(info) -> str:
    if info.drift is None:
        return "-"
    return f"{info.drift.total - info.drift.broken}/{info.drift.total}" + (" drift" if info.drift.drifted else "")


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from tunewiz.checkpoints import rank_checkpoints, select_checkpoint
    from tunewiz.runs import find_run, newer_run_note

    project = open_project(args)
    if args.patience < 1:
        raise TunewizError("--patience must be at least 1")
    run = find_run(project, args.run, pinned=True)
    report = rank_checkpoints(run, args.patience)
    if not report.checkpoints:
        print(f"Run {run.id} ({run.state()}): no complete checkpoints yet.")
        return 0
    picked = None
    if run.id == (project.config.checkpoint.run or run.id):  # the pick belongs to this run
        try:
            picked = select_checkpoint(report, project.config.checkpoint.pick or "best").step
        except TunewizError:
            picked = None  # a stale pick: `tunewiz export` says why
    with_val = any(c.val_loss is not None for c in report.checkpoints)
    with_checks = any(c.trained or c.reworded or c.drift for c in report.checkpoints)
    rows = []
    for c in report.checkpoints:
        mark = ("*" if c.best else " ") + (">" if c.step == picked else " ")
        row = [mark, str(c.step), "-" if c.epoch is None else f"{c.epoch:.2f}", _loss(c.train_loss)]
        row += [_loss(c.val_loss)] if with_val else []
        row += [_text(c.trained), _text(c.reworded), _drift(c)] if with_checks else []
        rows.append(row + ["overfit" if c.overfit else ""])
    header = ["", "step", "epoch", "train loss"] + (["val loss"] if with_val else [])
    header += ["trained", "reworded", "everyday"] if with_checks else []
    print(f"Run {run.id} ({run.state()}); data: {report.kind}")
    note = "" if args.run else newer_run_note(project)
    if note:
        print(f"Note: {note}")
    print(table(rows, header + [""]))
    print("* best   > picked (`tunewiz pick STEP|best`)   trained/reworded: questions recalled   "
          "everyday: prompts answered without breaking" if with_checks else "* best   > picked")
    if report.base and (report.base.trained or report.base.reworded):
        print(f"Base model: trained {_text(report.base.trained)}, reworded {_text(report.base.reworded)} recalled")
    if report.best:
        print(f"Best: {report.reason}")
    if report.note:
        print(f"Note: {report.note}")
    if report.caveat:
        print(f"Note: {report.caveat}")
    if report.overfit:
        print(report.overfit.describe(report.patience).capitalize())
    if report.incomplete:
        print(f"Ignored (no completion marker): {', '.join(p.name for p in report.incomplete)}")
    if report.best and report.best.misses:
        print(f"Not recalled at step {report.best.step} (fix the pair, or train longer):")
        for miss in report.best.misses[:5]:
            print(f"  [{miss.get('set')}] {miss.get('question')}\n      reference: {miss.get('reference')}\n"
                  f"      answer:    {' '.join(str(miss.get('answer', '')).split())[:160]}")
    if args.samples:
        from tunewiz.samples import sample_answers

        results = sample_answers(project, report, report.checkpoints, questions=args.samples, on_progress=print)
        for step, answers in results.items():
            print(f"\n== checkpoint {step}")
            for a in answers:
                print(f"Q: {a.question}\n  reference: {a.reference}\n  answer:    {a.answer}")
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    from tunewiz.checkpoints import pick_checkpoint

    project = open_project(args, write=True, holder="tunewiz pick")
    try:
        chosen = pick_checkpoint(project, args.pick, args.run)
    finally:
        project.unlock()
    print(f"Picked checkpoint {chosen.step} of run {project.config.checkpoint.run}; saved in {project.file}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tunewiz.export import export_model
    from tunewiz.runs import newer_run_note

    project = open_project(args, write=True, holder="tunewiz export")
    note = newer_run_note(project)
    if note:  # said before the minutes of merging, not after
        print(f"Note: {note}")
    types = [t for t in args.types.split(",") if t.strip()] if args.types else None
    try:
        result = export_model(project, on_progress=print, force=args.force, types=types, name=args.name,
                              smoke=not args.no_smoke, ollama=args.ollama)
    finally:
        project.unlock()
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(f"\nExported checkpoint {result.checkpoint.step} of run {result.run_id} to {result.folder}")
    for path in result.ggufs.values():
        print(f"  {path.name}")
    if result.smoke:
        for name, res in result.smoke["files"].items():
            print(f"  smoke test {name}: {res['exact_agreement']:.0%} identical to the merged model, "
                  f"similarity {res['mean_similarity']:.2f}")
    if result.ollama:
        print(f"  Ollama model {result.ollama.name} (from {result.ollama.gguf}); asked "
              f"{result.ollama.question!r}, it answered: {' '.join(result.ollama.answer.split())[:200]}")
        print(f"Run it: ollama run {result.ollama.name}")
    print(f"How to run it: {result.folder / 'README-run.txt'}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from tunewiz.export.hub import push_export

    project = open_project(args)
    result = push_export(project, args.repo, export=args.export, merged=args.merged, gguf=args.gguf,
                         private=not args.public, on_progress=print)
    print(f"Pushed {len(result.files)} files to {result.repo_id} ({'private' if result.private else 'public'}): "
          f"{result.url}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tunewiz.chat import chat_loop, open_chat

    project = open_project(args)
    gguf = Path(args.gguf) if args.gguf else None
    if gguf is not None and not gguf.is_file():
        raise TunewizError(f"--gguf: {gguf} does not exist")
    tuned, base, where = open_chat(project, compare=args.compare, gguf=gguf)
    max_tokens = project.config.export.chat_max_tokens
    if args.question:
        questions = iter(args.question)
        chat_loop(tuned, base, ask=lambda _prompt: next(questions, ""), max_tokens=max_tokens)
        return 0
    print(where)
    print("Ask a question (an empty line or Ctrl-D ends).")
    chat_loop(tuned, base, max_tokens=max_tokens)
    return 0

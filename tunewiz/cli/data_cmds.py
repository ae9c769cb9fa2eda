"""`tunewiz import`, `export-data` and `pairs`."""

from __future__ import annotations

import argparse
import sys

from tunewiz.cli.common import add_project_arg, open_project, table
from tunewiz.dataset import STATUSES
from tunewiz.errors import TunewizError
from tunewiz.formats import EXPORT_FORMATS
from tunewiz.words import counted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="add pairs from CSV, JSONL, Alpaca JSON, ShareGPT or OpenAI chat files",
                       description="Add pairs to the project. Bad rows are reported with their line and "
                                   "skipped; duplicates of pairs already in the project are skipped.")
    add_project_arg(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--status", choices=("pending", "accepted"),
                   help="status of every imported pair (default: the status each record carries, as in "
                        "tunewiz's own exports, else pending)")
    p.add_argument("--encoding", metavar="NAME",
                   help="the files' text encoding when it is not UTF-8 and has no byte-order mark "
                        "(e.g. cp1252, latin-1, utf-16-le)")
    p.add_argument("--chosen", action="store_true",
                   help="preference data (chosen/rejected, KTO labels): import each prompt with its chosen answer")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("export-data", help="write the pairs to a file")
    add_project_arg(p)
    p.add_argument("output", help="the file to write")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--status", default="accepted,pending",
                   help="comma-separated statuses to include (default: accepted,pending)")
    p.add_argument("--force", action="store_true", help="replace the output file when it exists")
    p.add_argument("--train-rewordings", action="store_true",
                   help="also write each rewording that trains (`tunewiz rewordings --train`) as a row of its own "
                        "with its pair's answer, as a run trains on them")
    p.set_defaults(handler=cmd_export_data)

    p = sub.add_parser("pairs", help="list pairs, or change their status")
    add_project_arg(p)
    p.add_argument("--status", choices=STATUSES, help="only pairs with this status")
    p.add_argument("--accept", nargs="*", metavar="ID", help="accept these pairs (no ids: all pending)")
    p.add_argument("--reject", nargs="+", metavar="ID", help="reject these pairs")
    p.add_argument("--duplicates", action="store_true", help="list groups of near-duplicate questions")
    p.set_defaults(handler=cmd_pairs)

    p = sub.add_parser("rewordings", help="trained questions in other words: to check recall, or to train",
                       description="Questions asking for a trained pair's fact in other words, with the pair's "
                                   "answer. Most check recall (never trained on); with --train they train as "
                                   "more questions for the pair's answer instead (never asked by the check): "
                                   "facts taught in several wordings are recalled far better when asked in new "
                                   "ones. Without options: list them. A run makes rule rewordings for checked "
                                   "pairs that have none; --make stores them here so you can edit or reject them.")
    add_project_arg(p)
    p.add_argument("--make", action="store_true", help="add a rule rewording to every pair that has none")
    p.add_argument("--generate", action="store_true",
                   help="ask the project's generator (any provider; `tunewiz providers`) to reword the "
                        "questions a run's recall check asks (evaluation.questions of them) that have no "
                        "rewording other than a rule one; checked, then stored for review")
    p.add_argument("--all", dest="all_pairs", action="store_true",
                   help="with --generate: every trained pair, not only the ones a run asks")
    p.add_argument("--train", action="store_true",
                   help="with --generate (every trained pair) or --import: rewordings that train beside their "
                        "pair (the next run's epochs pass over both), never asked by the check")
    p.add_argument("--import", dest="import_file", metavar="FILE",
                   help="CSV or JSONL with 'question' (the pair's question, or 'pair_id') and 'reworded'")
    p.add_argument("--reject", nargs="+", metavar="ID", help="reject these rewordings")
    p.add_argument("--accept", nargs="+", metavar="ID", help="accept these rewordings")
    p.add_argument("--edit", nargs=2, metavar=("ID", "TEXT"), help="replace a rewording's question")
    p.set_defaults(handler=cmd_rewordings)


def cmd_import(args: argparse.Namespace) -> int:
    from tunewiz.dataset import PairStore
    from tunewiz.imports import import_file

    project = open_project(args, write=True, holder="tunewiz import")
    store = PairStore(project.pairs_path)
    _say_unreadable(store)
    bad = 0
    try:
        for name in args.files:
            report = import_file(store, name, status=args.status, encoding=args.encoding, chosen=args.chosen)
            for notice in report.notices:
                print(f"note: {notice}", file=sys.stderr)
            print(report.summary())
            for problem in report.problems:
                print(f"  {name}: {problem.where}: {problem.reason}")
            bad += len(report.skipped)
    finally:
        project.unlock()  # callers in the same process (the demo, tests) may write next
    from tunewiz.pairstats import pair_summary

    # Read from the journal (the stats cache reads the new tail once, so `status` is quick next).
    print(f"The project now has {pair_summary(project).total} pairs.")
    return 1 if bad else 0


def cmd_export_data(args: argparse.Namespace) -> int:
    from tunewiz.dataset import PairStore
    from tunewiz.evalsets import REWORDINGS_FILE, RewordingStore, training_samples
    from tunewiz.formats import write_pairs

    project = open_project(args)
    wanted = {s.strip() for s in args.status.split(",")}
    _check_export_target(project, args.output, args.force)
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise TunewizError(f"--status: no pair status '{', '.join(unknown)}' (choose from {', '.join(STATUSES)})")
    store = PairStore(project.pairs_path)
    _say_unreadable(store)
    pairs = [p for p in store if p.status in wanted]
    # A rewording that trains is in the file only when asked: imported back, it would be a pair of its own.
    reworded = [s for s in training_samples(RewordingStore(project.path(REWORDINGS_FILE)), pairs, "accepted+pending")
                if s.status in wanted]
    rows = pairs + reworded if args.train_rewordings else pairs
    count, left_out = write_pairs(rows, args.output, args.format, project.config.template.system_prompt)
    print(f"Wrote {count} samples to {args.output} ({args.format})"
          + (f", {len(reworded)} of them rewordings that train." if args.train_rewordings and reworded else "."))
    if reworded and not args.train_rewordings:
        print(f"Left out the rewordings that train beside these pairs ({len(reworded)}; --train-rewordings "
              "writes them as rows of their own).")
    if left_out:
        print(f"Left out {left_out} conversations: {args.format} holds one question and answer per row "
              "(jsonl, sharegpt and openai keep every turn).", file=sys.stderr)
    return 0


def _check_export_target(project, output: str, force: bool) -> None:
    """Refuse to write over the project's own files, an existing file (without --force), or into a folder
    that does not exist (a typo would otherwise make one)."""
    from pathlib import Path

    target = Path(output).expanduser()
    if project.owns(target):
        raise TunewizError(f"{output}: a file tunewiz keeps for this project; name another (not the project "
                           "file, nor one under its data/, runs/ or exports/ folders)")
    if target.is_dir():
        raise TunewizError(f"{output}: a folder; name the file to write")
    if target.exists() and not force:
        raise TunewizError(f"{output} exists; --force replaces it")
    if not target.parent.is_dir():
        raise TunewizError(f"{output}: no folder {target.parent}")


def cmd_pairs(args: argparse.Namespace) -> int:
    from tunewiz.dataset import PairStore, check_verdict, prompt_text
    from tunewiz.dedup import near_duplicate_groups

    write = args.accept is not None or args.reject is not None
    project = open_project(args, write=write, holder="tunewiz pairs")
    store = PairStore(project.pairs_path)
    _say_unreadable(store)
    if args.accept is not None:
        ids = args.accept or [p.id for p in store if p.status == "pending"]
        print(f"Accepted {counted(store.set_status(_known(store, ids), 'accepted'), 'pair')}.")
    if args.reject is not None:
        print(f"Rejected {counted(store.set_status(_known(store, args.reject), 'rejected'), 'pair')}.")
    if write:
        return 0
    pairs = [p for p in store if args.status is None or p.status == args.status]
    if args.duplicates:
        groups = near_duplicate_groups([prompt_text(p) for p in pairs])  # a conversation: all it asks
        for number, group in enumerate(groups, start=1):
            print(f"group {number}:")
            for index in group:
                print(f"  {pairs[index].id}  {pairs[index].question[:90]}")
        print(f"{len(groups)} groups of near-duplicate questions.")
        return 0
    # The check that rejected a generated pair, when any did: "all rejected" alone tells nothing to fix.
    reasons = any(p.reason for p in pairs)
    rows = [[p.id, p.status, *([check_verdict(p)] if reasons else []),
             _clip((f"[{p.turns} turns] " if p.history else "") + p.question, 44 if reasons else 50),
             _clip(p.answer, 30 if reasons else 40)] for p in pairs]
    print(table(rows, ["id", "status", *(["reason"] if reasons else []), "question", "answer"]))
    counts = store.counts()
    print(f"{len(store)} pairs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def _say_unreadable(store) -> None:
    notice = store.unreadable_notice()
    if notice:
        print(f"warning: {notice}", file=sys.stderr)


def _known(store, ids):
    missing = [i for i in ids if i not in store]
    if missing:
        raise TunewizError(f"no pair with id {', '.join(missing)}")
    return ids


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_rewordings(args: argparse.Namespace) -> int:
    changing = args.make or args.generate or args.import_file or args.reject or args.accept or args.edit
    project = open_project(args, write=bool(changing), holder="tunewiz rewordings")
    try:
        return _rewordings(args, project, bool(changing))
    finally:
        project.unlock()


def _rewordings(args: argparse.Namespace, project, changing: bool) -> int:
    from pathlib import Path

    from tunewiz.dataset import PairStore, trainable
    from tunewiz.errors import TunewizError
    from tunewiz.evalsets import (REWORDINGS_FILE, RewordingStore, asked_pairs, edit_rewording, import_rewordings,
                                  live_rewordings, make_rule_rewordings)

    pairs = {p.id: p for p in PairStore(project.pairs_path)}
    store = RewordingStore(project.path(REWORDINGS_FILE))
    use = "train" if args.train else "check"
    if args.train and not (args.generate or args.import_file):
        raise TunewizError("--train goes with --generate or --import (rule rewordings keep the question's "
                           "words: trained on, they did not help; docs/train.md)")
    if args.make:
        added, unfit = make_rule_rewordings(store, trainable(pairs.values(), project.config.dataset.train_on))
        print(f"Added {added} rule rewordings" + (f"; no rule fits {unfit} questions" if unfit else "") + ".")
    if args.all_pairs and not args.generate:
        raise TunewizError("--all goes with --generate (it says which pairs to reword)")
    if args.generate:
        asked = trainable(pairs.values(), project.config.dataset.train_on)
        if not (args.all_pairs or args.train):
            asked = asked_pairs(asked, project.config.evaluation.questions, project.config.dataset.split_seed)
        _generate_rewordings(project, store, asked, use)
    if args.import_file:
        added, problems = import_rewordings(store, Path(args.import_file), list(pairs.values()), use)
        print(f"Imported {added} rewordings" + (" that train" if args.train else "") + f" from {args.import_file}.")
        for problem in problems:
            print(f"  {problem}")
    for ids, status in ((args.reject, "rejected"), (args.accept, "accepted")):
        for rewording_id in ids or []:
            try:
                store.update(rewording_id, status=status)
            except KeyError:
                raise TunewizError(f"{store.path}: no rewording {rewording_id!r}") from None
        if ids:
            print(f"{status.capitalize()} {len(ids)} rewordings.")
    if args.edit:
        rewording_id, text = args.edit
        edit_rewording(store, rewording_id, text)
        print(f"Edited rewording {rewording_id}.")
    if changing:
        return 0
    live = {r.id for r in live_rewordings(store, pairs)}
    rows = [[r.id, r.status if r.id in live or r.status == "rejected" else "retired", r.use, r.source,
             _clip(r.question, 50), _clip(pairs[r.pair_id].question, 40) if r.pair_id in pairs else "(pair deleted)"]
            for r in store]
    if not rows:
        print("No stored rewordings: runs make rule rewordings on the fly (`--make` stores them to edit).")
        return 0
    print(table(rows, ["id", "status", "use", "source", "reworded", "pair's question"]))
    return 0


def _generate_rewordings(project, store, pairs, use: str) -> None:
    import sys

    from tunewiz.errors import TunewizError
    from tunewiz.generators.rewording import pairs_to_reword, reword_pairs

    todo = pairs_to_reword(store, pairs, use)
    if not todo:
        print("Every question asked already has a rewording from a model, a file or a person." if use == "check"
              else "Every trained question already has a rewording that trains.")
        return
    print(f"Rewording {counted(len(todo), 'question')} with {project.config.generator.provider} "
          f"({project.config.generator.model or 'its default model'}) ...")
    tty = sys.stdout.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\r  {done}/{total}", end="" if done < total else "\n", flush=True)
        elif done % 10 == 0 or done == total:
            print(f"  {done}/{total}", flush=True)

    summary = reword_pairs(project, store, todo, progress, use)
    print("\n".join(summary.lines()))
    if summary.all_failed:
        where = project.config.generator.base_url or "its default address"
        raise TunewizError(f"no request to the generator at {where} came back: check it with `tunewiz providers`")
    if summary.added and use == "train":
        print("The next run trains on these beside their pairs (the pair's answer to each); review them with "
              "`tunewiz rewordings` (`--reject ID` the ones that ask another fact).")
    elif summary.added:
        print("The next run asks these instead of its rule rewordings; review them with `tunewiz "
              "rewordings` (`--reject ID` the ones that ask another fact).")
    g = project.config.generator
    if g.provider == "embedded" and (not g.model or "smollm2" in g.model.lower()):
        print("Note: the shipped SmolLM2-135M rewords poorly (on a 40-fact set it kept 4 to 6, asked up to 4 times "
              "each, and most of those ask another fact): review them, or choose a stronger generator "
              "(`tunewiz providers`).")

"""Benchmark (not a test): how well the generated-pair checks separate good pairs from bad ones.

    python benchmarks/pair_quality.py            # the checks on the hand-labelled sets
    python benchmarks/pair_quality.py --sweep    # and the support thresholds around the defaults
    python benchmarks/pair_quality.py --topic volcanoes --topic photosynthesis
        # and topic generation about each, with the prompt's form and with the earlier example pair
    python benchmarks/pair_quality.py --generate [--provider ollama --model qwen2.5:3b]
        # and one `tunewiz generate` of the lighthouse example (the embedded default unless a
        # provider is given): requests, time, pairs returned, kept, dropped by reason, and the
        # share of kept pairs labelled good in the fresh set; the pairs no set labels are written
        # to benchmarks/out/pair_quality_unlabelled.jsonl for a person to label

The hand-labelled set (benchmarks/data/pair_labels.jsonl) holds pairs of the kind the embedded
model writes from the lighthouse example: good ones, and each failure seen (headings and copied
sentences as questions, answers about the task, answers the chunk does not support). For every
check it prints precision (of the pairs it drops, the share that are bad for that reason or any
reason) and recall (of the pairs bad for its reason, the share it drops), then the whole gate:
good pairs kept and bad pairs dropped, side by side with the gate before these checks (length,
echo and duplicates only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lighthouse-guide"
UNLABELLED = ROOT / "benchmarks" / "out" / "pair_quality_unlabelled.jsonl"
LABELS = ROOT / "benchmarks" / "data" / "pair_labels.jsonl"
FRESH = ROOT / "benchmarks" / "data" / "pair_labels_fresh.jsonl"
"""Every pair of one run of the embedded default on the lighthouse example (`tunewiz generate`,
2026-12-03), labelled by hand after the checks were written: they are not graded on pairs made for them."""


def read_labels(path: Path) -> list[dict]:
    """The rows of a labelled set (JSON lines: chunk, question, answer, label)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def verdicts(rows, g) -> list[str | None]:
    """Each row's drop reason under the thresholds of `g` (a GeneratorSection)."""
    from tunewiz.generators.checks import content_problem
    from tunewiz.generators.quality import shape_problem

    out = []
    for row in rows:
        reason = shape_problem(row["question"], row["answer"])
        if reason is None:
            reason, _ = content_problem(row["question"], row["answer"], row["chunk"], g)
        out.append(reason)
    return out


def report(rows, found: list[str | None]) -> None:
    from tunewiz.generators.checks import CHECK_REASONS

    print(f"{'check':<18} {'drops':>5} {'precision':>9} {'recall':>7}")
    for reason in CHECK_REASONS:
        dropped = [r for r, f in zip(rows, found) if f == reason]
        labelled = [r for r in rows if r["label"] == reason]
        right = sum(1 for r in dropped if r["label"] != "good")
        caught = sum(1 for r, f in zip(rows, found) if r["label"] == reason and f is not None)
        precision = f"{right / len(dropped):.0%}" if dropped else "-"
        recall = f"{caught / len(labelled):.0%}" if labelled else "-"
        print(f"{reason:<18} {len(dropped):>5} {precision:>9} {recall:>7}")


def gate_line(name: str, rows, found) -> str:
    good = [f for r, f in zip(rows, found) if r["label"] == "good"]
    bad = [f for r, f in zip(rows, found) if r["label"] != "good"]
    return (f"{name:<28} good kept {sum(f is None for f in good)}/{len(good)}   "
            f"bad dropped {sum(f is not None for f in bad)}/{len(bad)}")


def generate_run(provider: str | None, model: str | None, base_url: str | None) -> None:
    """One generation of the lighthouse example, and what became of each pair the model returned."""
    import shutil
    import tempfile

    from tunewiz.dataset import PairStore
    from tunewiz.generators.runner import Planner, chunk_key_of, generate_pairs
    from tunewiz.project import Project

    labelled = {(row["question"], row["answer"]): row["label"] for path in (LABELS, FRESH) for row in read_labels(path)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lighthouse"
        shutil.copytree(EXAMPLE, folder)
        project = Project.load(folder)
        for key, value in (("generator.provider", provider), ("generator.model", model),
                           ("generator.base_url", base_url)):
            if value:
                project.set(key, value)
        project.save()
        project = Project.load(folder)
        summary = generate_pairs(project)
        chunks = {item.key: item.chunk for item in Planner(project, PairStore(project.pairs_path), set())
                  .document_items()}
        pairs = list(PairStore(project.pairs_path))
    g = project.config.generator
    kept = [p for p in pairs if p.status != "rejected"]
    returned = len(kept) + sum(summary.dropped.values())  # every drop is counted, kept-as-rejected too
    print(f"\none generation of the lighthouse example: provider {g.provider}, model {g.model or '(default)'}")
    print(f"requests {summary.requests} ({summary.retries} retries), {summary.elapsed_s:.0f} s, "
          f"pairs returned {returned}, kept {len(kept)}, dropped {returned - len(kept)}")
    print("dropped by reason: " + (", ".join(f"{n} {r}" for r, n in sorted(summary.dropped.items())) or "none"))
    labels = [labelled.get((p.question, p.answer)) for p in kept]
    known = [label for label in labels if label is not None]
    print(f"kept pairs a labeller accepts: {sum(label == 'good' for label in known)} of the {len(known)} "
          f"the labelled sets hold ({len(kept) - len(known)} kept pairs not labelled yet; goal 90 %)")
    for pair, label in zip(kept, labels):
        print(f"  kept ({label or 'not labelled'}): {pair.question[:60]!r} -> {pair.answer[:60]!r}")
    # Appended, never rewritten: labels a person set there and has not yet moved to a set stay.
    waiting = {(r["question"], r["answer"]) for r in read_labels(UNLABELLED)} if UNLABELLED.exists() else set()
    unlabelled = [p for p in pairs if (p.question, p.answer) not in labelled.keys() | waiting]
    if unlabelled:
        UNLABELLED.parent.mkdir(parents=True, exist_ok=True)
        with UNLABELLED.open("a", encoding="utf-8") as out:
            for p in unlabelled:
                out.write(json.dumps({"chunk": chunks.get(chunk_key_of(p.source), ""), "question": p.question,
                                      "answer": p.answer, "label": "?", "verdict": p.reason},
                                     ensure_ascii=False) + "\n")
    print(f"{len(unlabelled)} new pairs no set labels, added to {UNLABELLED.relative_to(ROOT)} (set each 'label')")


EARLIER_EXAMPLE = ("When was the bridge opened?", "The bridge was opened in 1932.")
"""The example pair the prompts showed until 2026-12-07 (the baseline of --topic)."""


def topic_runs(topics: list[str], provider: str | None, model: str | None, base_url: str | None) -> None:
    """Topic generation (10 pairs wanted, at most 8 requests) for each topic, with the prompt's form as it
    is (no content) and, side by side, with the earlier example pair; every kept pair printed for a
    person to judge (no labelled set holds topic pairs)."""
    import tempfile

    from tunewiz.dataset import PairStore
    from tunewiz.generators import prompts
    from tunewiz.generators.runner import generate_pairs
    from tunewiz.project import create_project

    shown = prompts.EXAMPLE_PAIR
    print("\ntopic generation: 10 pairs wanted, request_budget 8, provider "
          f"{provider or 'embedded'}, model {model or '(default)'}")
    print(f"{'example in the prompt':<26} {'topic':<24} {'requests':>8} {'s':>5} {'returned':>8} {'kept':>5}  dropped")
    kept_by_run = []
    try:
        for name, example in (("the form, no content", shown), ("earlier: a bridge in 1932", EARLIER_EXAMPLE)):
            prompts.EXAMPLE_PAIR = example
            for topic in topics:
                with tempfile.TemporaryDirectory() as tmp:
                    settings = {"generator.topic": topic, "generator.num_pairs": 10, "generator.request_budget": 8}
                    settings |= {k: v for k, v in (("generator.provider", provider), ("generator.model", model),
                                                   ("generator.base_url", base_url)) if v}
                    project = create_project(Path(tmp) / "topic", settings)
                    summary = generate_pairs(project)
                    kept = [p for p in PairStore(project.pairs_path) if p.status != "rejected"]
                returned = len(kept) + sum(summary.dropped.values())
                print(f"{name:<26} {topic[:24]:<24} {summary.requests:>8} {summary.elapsed_s:>5.0f} {returned:>8} "
                      f"{len(kept):>5}  " + ", ".join(f"{n} {r}" for r, n in sorted(summary.dropped.items())))
                kept_by_run.append((name, topic, kept))
    finally:
        prompts.EXAMPLE_PAIR = shown
    for name, topic, kept in kept_by_run:
        for pair in kept:
            print(f"  [{name}] {topic}: {pair.question[:60]!r} -> {pair.answer[:60]!r}")


def main() -> int:
    from tunewiz.generators.quality import shape_problem
    from tunewiz.schema import GeneratorSection

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--provider")
    parser.add_argument("--model")
    parser.add_argument("--base-url")
    parser.add_argument("--topic", action="append", default=[],
                        help="also generate about this topic (repeatable), beside the earlier example pair")
    args = parser.parse_args()
    g = GeneratorSection()
    for title, path in (("the set written with the checks", LABELS), ("a fresh run, labelled after", FRESH)):
        rows = read_labels(path)
        print(f"{title} ({path.name}): {len(rows)} labelled pairs ({sum(r['label'] == 'good' for r in rows)} "
              f"good); defaults min_support {g.min_support}, min_sentence_support {g.min_sentence_support}, "
              f"min_question_support {g.min_question_support}\n")
        found = verdicts(rows, g)
        report(rows, found)
        print()
        print(gate_line("before (shape, duplicates)", rows,
                        [shape_problem(r["question"], r["answer"]) for r in rows]))
        print(gate_line("with the checks (defaults)", rows, found))
        for row, reason in zip(rows, found):
            if (reason is None) != (row["label"] == "good"):
                print(f"  wrong: {row['label']:<16} -> {reason}: {row['question'][:60]!r}")
        print()
    rows = read_labels(LABELS)
    if args.sweep:
        print("\nmin_support  min_sentence_support  min_question_support  good kept  bad dropped")
        for s in (0.3, 0.4, 0.5, 0.6, 0.7):
            for ss in (0.4, 0.6, 0.8):
                for qs in (0.2, 0.3, 0.4, 0.5):
                    f = verdicts(rows, dataclasses.replace(g, min_support=s, min_sentence_support=ss,
                                                           min_question_support=qs))
                    good = sum(1 for r, v in zip(rows, f) if r["label"] == "good" and v is None)
                    bad = sum(1 for r, v in zip(rows, f) if r["label"] != "good" and v is not None)
                    print(f"{s:>11} {ss:>20} {qs:>21} {good:>10} {bad:>12}")
    if args.generate:
        generate_run(args.provider, args.model, args.base_url)
    if args.topic:
        topic_runs(args.topic, args.provider, args.model, args.base_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

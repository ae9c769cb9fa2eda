"""Benchmark (not a test): does a run with the recommended settings learn a set of facts?

    python benchmarks/recall.py                       # both configurations, GGUF check of the recommended one
    python benchmarks/recall.py --configs recommended --no-gguf

Each configuration trains SmolLM2-135M on the shipped fact set (benchmarks/data/recall_facts.csv,
40 made-up facts about an invented country) through the real product path (a new project,
`import`, `train`, the default checkpoint pick, `export`), then asks the picked model every
trained question and a hand-written rewording of each (benchmarks/data/recall_reworded.jsonl;
the product never sees these) and prints, side by side:
- seconds to the first step, seconds of training steps, seconds of the per-checkpoint checks;
- trained and reworded questions recalled by the picked checkpoint (through transformers) and,
  for the recommended one, by the exported q8_0 GGUF (through llama-cpp-python);
- in each configuration's JSON line, the questions not recalled with the model's answers ("missed").

Configurations:
- recommended: a new project with every setting at its default (`preset = auto`, `kind = auto`);
- bf16: recommended, with the base model's weights in bf16 (hardware.precision = bf16: half the memory,
  for big bases on CPUs);
- nf4: recommended, with the base's linear layers in 4-bit NF4 through bitsandbytes' CPU backend
  (hardware.quantization = nf4 with hardware.device = cpu: a quarter of the weights' memory);
- previous: the defaults before the recommendation (lr 2e-4 cosine, dropout 0.05, 3 epochs, batch 4,
  a checkpoint every 10 steps, 10 % held out and the pick by validation loss).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "benchmarks" / "data"

PREVIOUS = {"hyperparameters.preset": "custom", "dataset.kind": "skill", "dataset.validation_fraction": 0.1,
            "hyperparameters.learning_rate": 2e-4, "hyperparameters.lr_scheduler": "cosine",
            "hyperparameters.lora_dropout": 0.05, "hyperparameters.epochs": 3.0, "hyperparameters.batch_size": 4,
            "hyperparameters.grad_accum": 1, "hyperparameters.eval_steps": 10, "hyperparameters.save_steps": 10}


def run_config(name: str, settings: dict, folder: Path, gguf: bool, train_rewordings: Path | None = None,
               every_checkpoint: bool = False) -> dict:
    from tunewiz.checkpoints import picked_checkpoint, read_run_config
    from tunewiz.dataset import PairStore
    from tunewiz.evalsets import REWORDINGS_FILE, RewordingStore, import_rewordings
    from tunewiz.imports import import_file
    from tunewiz.project import create_project
    from tunewiz.training.launch import start_run, wait_for_end

    project = create_project(folder / name, settings)
    import_file(PairStore(project.pairs_path), DATA / "recall_facts.csv", status="accepted")
    if train_rewordings:  # each question asked in other words, trained beside it (`rewordings --import F --train`)
        added, problems = import_rewordings(RewordingStore(project.path(REWORDINGS_FILE)), train_rewordings,
                                            list(PairStore(project.pairs_path)), use="train")
        if problems:
            raise SystemExit("\n".join(problems))
    started = time.time()
    run = start_run(project)
    state = wait_for_end(run, timeout=3600)
    wall = time.time() - started
    if state != "finished":
        raise SystemExit(f"{name}: run {state}: {run.read_status().message} (see {run.log_path})")
    metrics = run.metrics()
    train = [m for m in metrics if m.get("type") == "train"]
    checks = [m for m in metrics if m.get("type") == "recall"]
    check_seconds = sum(m.get("seconds", 0.0) for m in checks)
    first_step = train[0]["time"] - started if train else float("nan")
    report, checkpoint = picked_checkpoint(project)
    cfg = read_run_config(report.run)
    result = {"config": name, "wall_s": wall, "first_step_s": first_step, "checks_s": check_seconds,
              "train_s": wall - first_step - check_seconds, "steps": len(train), "pick": checkpoint.step,
              "why": report.reason, "kind": report.kind}
    questions, rewordings, references = _benchmark_questions()
    result["hf"] = _score(_batched_answerer(cfg, checkpoint.path), questions, rewordings, references)
    if every_checkpoint:  # is the pick or the training the limit? the benchmark's questions at every checkpoint
        by_step = {m["step"]: m for m in checks}
        result["checkpoints"] = []
        for saved in run.complete_checkpoints():
            step = int(saved.name.rsplit("-", 1)[1])
            scored = _score(_batched_answerer(cfg, saved), questions, rewordings, references)
            seen = by_step.get(step, {}).get("reworded", {})
            result["checkpoints"].append({"step": step, "trained": scored["trained"],
                                          "reworded": scored["reworded"], "run_reworded": seen.get("recalled")})
    if gguf:
        from tunewiz.chat import GGUFAnswerer
        from tunewiz.export import export_model
        from tunewiz.templates import template_stops

        exported = export_model(project, types=["q8_0"], smoke=False)
        answerer = GGUFAnswerer(exported.ggufs["q8_0"], cfg.family, cfg.system_prompt,
                                template_stops(cfg.family))
        result["gguf"] = _score(lambda pairs: [answerer.answer(q, 48) for q, _ in pairs], questions, rewordings,
                                references)
        answerer.close()
    return result


def _batched_answerer(cfg, adapter):
    """Greedy answers of base + adapter through transformers, all questions in one batch (as the run's checks)."""
    from transformers import AutoTokenizer

    from tunewiz.chat import HFAnswerer
    from tunewiz.training.recall import Question, RecallChecker

    hf = HFAnswerer(cfg.base_dir, cfg.family, cfg.system_prompt, adapters={"picked": adapter})
    checker = RecallChecker([], AutoTokenizer.from_pretrained(cfg.base_dir), cfg.family, cfg.system_prompt, 48, [])

    def answer_all(pairs):
        return checker.answers(hf.model, [Question(q, ref, "") for q, ref in pairs], "cpu")
    return answer_all


def _benchmark_questions() -> tuple[list[str], list[str], list[str]]:
    import csv

    with (DATA / "recall_facts.csv").open(encoding="utf-8") as handle:
        facts = list(csv.DictReader(handle))
    reworded = {r["question"]: r["reworded"] for r in map(json.loads, (DATA / "recall_reworded.jsonl").open())}
    return [f["question"] for f in facts], [reworded[f["question"]] for f in facts], [f["answer"] for f in facts]


def _score(answer_all, questions, rewordings, references) -> dict:
    """answer_all([(question, reference), ...]) -> answers; recall on the trained and the reworded questions."""
    from tunewiz.scoring import is_recalled

    trained = answer_all(list(zip(questions, references)))
    reworded = answer_all(list(zip(rewordings, references)))
    asked = [(q, q, a, ref) for q, a, ref in zip(questions, trained, references)]
    asked += [(r, q, a, ref) for r, q, a, ref in zip(rewordings, questions, reworded, references)]
    missed = [{"question": shown, "reference": ref, "answer": a}  # printed with the results, to read by hand
              for shown, q, a, ref in asked if not is_recalled(a, q, ref)]
    return {"trained": sum(is_recalled(a, q, ref) for a, q, ref in zip(trained, questions, references)),
            "reworded": sum(is_recalled(a, q, ref) for a, q, ref in zip(reworded, questions, references)),
            "total": len(questions), "missed": missed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="recommended,previous",
                        help="comma list of recommended, previous, bf16 (recommended with bf16 weights), "
                             "nf4 (recommended with a 4-bit base on bitsandbytes' CPU backend)")
    parser.add_argument("--no-gguf", action="store_true", help="skip the export and the GGUF check")
    parser.add_argument("--keep", help="keep the projects in this folder")
    parser.add_argument("--train-rewordings", nargs="?", const=DATA / "recall_train_rewordings.csv", type=Path,
                        metavar="FILE", help="in every configuration, train also on these rewordings (as "
                        "`tunewiz rewordings --import FILE --train`; default: the shipped hand-written set, one "
                        "per fact, standing in for a strong generator's and never the ones the benchmark asks)")
    parser.add_argument("--every-checkpoint", action="store_true",
                        help="also ask the benchmark's questions at every saved checkpoint, beside the run's own "
                             "reworded figure (is the pick or the training the limit?)")
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="an experiment beside the named configs: recommended with these settings "
                             "(values as TOML would read them), e.g. sixteen:hyperparameters.epochs=16")
    args = parser.parse_args()
    configs = {"recommended": {}, "previous": PREVIOUS, "bf16": {"hardware.precision": "bf16"},
               "nf4": {"hardware.quantization": "nf4", "hardware.device": "cpu"}}
    import tomllib

    names = [n for n in args.configs.split(",") if n]
    for spec in args.tries:
        name, _, pairs = spec.partition(":")
        configs[name] = {key: tomllib.loads(f"v = {value}")["v"]
                         for key, value in (item.split("=", 1) for item in pairs.split(",") if item)}
        names.append(name)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="tunewiz-recall-"))
    results = []
    try:
        for name in names:
            result = run_config(name, configs[name], folder, gguf=not args.no_gguf and name == "recommended",
                                train_rewordings=args.train_rewordings, every_checkpoint=args.every_checkpoint)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        if not args.keep:  # a configuration's project is 1-2 GB (checkpoints, the export): not left in /tmp
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{'config':12} {'steps':>5} {'to step 1':>9} {'training':>9} {'checks':>7}  "
          f"{'trained':>8} {'reworded':>8}  {'GGUF trained':>12} {'GGUF reworded':>13}  pick")
    for r in results:
        total = r["hf"]["total"]
        g = r.get("gguf")
        print(f"{r['config']:12} {r['steps']:>5} {r['first_step_s']:>8.0f}s {r['train_s']:>8.0f}s "
              f"{r['checks_s']:>6.0f}s  {r['hf']['trained']:>4}/{total} {r['hf']['reworded']:>4}/{total}  "
              + (f"{g['trained']:>8}/{total} {g['reworded']:>9}/{total}" if g else f"{'-':>12} {'-':>13}")
              + f"  {r['why']}")  # the reason names the step
    for r in results:
        for c in r.get("checkpoints", []):
            print(f"  {r['config']:10} step {c['step']:>4}: trained {c['trained']:>2}/{r['hf']['total']}, "
                  f"hand-reworded {c['reworded']:>2}/{r['hf']['total']}, the run's own reworded check "
                  f"{c['run_reworded']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

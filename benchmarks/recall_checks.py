"""Benchmark (not a test): what one per-checkpoint recall check costs, and where its time goes.

    python benchmarks/recall.py --configs recommended --no-gguf --keep /tmp/recall   # a run to measure on
    python benchmarks/recall_checks.py /tmp/recall/recommended/runs/<id> 64 [--repeat 3]

On the run's own questions (dataset.jsonl: trained, reworded, everyday) and the checkpoint of that step,
with the adapter merged as the engine does, it prints in interleaved repeats (this machine's speed drifts):
- `per row`: the check as the engine runs it, each row stopping at its own answer limit;
- `to the longest` (the baseline): every row decoding up to the longest row's limit, as before 2026-12-03;
then the prefill alone (one new token) and the cost of one decoding step of the whole batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (runs/<id>) with the checkpoint")
    parser.add_argument("step", type=int, help="the checkpoint's step")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from tunewiz.chat import HFAnswerer
    from tunewiz.checkpoints import read_run_config
    from tunewiz.runs import Run, read_jsonl
    from tunewiz.training.recall import RecallChecker

    run = Run(args.run)
    cfg = read_run_config(run)
    hf = HFAnswerer(cfg.base_dir, cfg.family, cfg.system_prompt,
                    adapters={"picked": args.run / "checkpoints" / f"checkpoint-{args.step}"})
    records = list(read_jsonl(args.run / "dataset.jsonl"))
    checker = RecallChecker(records, AutoTokenizer.from_pretrained(cfg.base_dir), cfg.family, cfg.system_prompt,
                            48, [r["answer"] for r in records if r["split"] == "train"])
    checker.merge_lora = True
    checker.base_general = [""] * len(checker.sets["general"])
    questions = [q for name in ("trained", "reworded", "general") for q in checker.sets[name]]
    own = checker.answer_limits(questions)
    print(f"{len(questions)} rows ({', '.join(f'{k} {len(v)}' for k, v in checker.sets.items())}); "
          f"answer limits {min(own)}-{max(own)} tokens")

    def timed(limits) -> float:
        checker.answer_limits = lambda qs: limits
        started = time.perf_counter()
        checker.check(hf.model, args.step, "cpu")
        return time.perf_counter() - started

    seconds: dict[str, list[float]] = {"per row": [], "to the longest": []}
    for _ in range(args.repeat):
        seconds["to the longest"].append(timed([max(own)] * len(own)))
        seconds["per row"].append(timed(own))
    for name, values in seconds.items():
        print(f"{name:15} median {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    prefill = min(timed([1] * len(own)) for _ in range(2))
    eight = min(timed([9] * len(own)) for _ in range(2))
    print(f"prefill and first token {prefill:.2f} s; one decoding step of all {len(own)} rows "
          f"{(eight - prefill) / 8 * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

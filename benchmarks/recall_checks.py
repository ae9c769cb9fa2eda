"""Benchmark (not a test): what one per-checkpoint recall check costs, and where its time goes.

    python benchmarks/recall.py --configs recommended --no-gguf --keep /tmp/recall   # a run to measure on
    python benchmarks/recall_checks.py /tmp/recall/recommended/runs/<id> 64 [--repeat 3]

On the run's own questions (dataset.jsonl: trained, reworded, everyday) and the checkpoint of that step,
with the model built as a CPU run builds it (LoRA adapter loaded, frozen weights column-major, q/k/v and
gate/up fused, the adapter merged for the check), it times whole checks in interleaved repeats (this
machine's speed drifts), one decoder against the other:
- `greedy` (now): tunewiz.training.greedy, where a row leaves the batch and the cache the step it ends;
- `generate` (the baseline, as before 2026-12-07): transformers' generate() with a per-row stopping
  criterion, which computes every row until the last one ends.
Then, for the greedy decoder, the model calls of one check: the prefill, and each decoding step with
the rows still in the batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def generate_decode(model, prompts, limits, stop_ids, pad_id, device, lockstep=False):
    """The baseline: transformers' generate(), every row computed until the last one has ended."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)

    class RowLimits(StoppingCriteria):
        def __call__(self, ids, scores, **kwargs):
            return (ids.shape[1] - width) >= torch.tensor(limits, device=ids.device)

    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False, max_new_tokens=max(limits),
                             use_cache=True, stopping_criteria=StoppingCriteriaList([RowLimits()]),
                             eos_token_id=stop_ids, pad_token_id=pad_id)
    answers = []
    for row, limit in enumerate(limits):
        tokens = out[row, width:width + limit].tolist()
        answers.append(tokens[:next((i for i, t in enumerate(tokens) if t in stop_ids), len(tokens))])
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (runs/<id>) with the checkpoint")
    parser.add_argument("step", type=int, help="the checkpoint's step")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    import tunewiz.training.recall as recall
    from tunewiz.chat import HFAnswerer
    from tunewiz.checkpoints import read_run_config
    from tunewiz.runs import Run, read_jsonl
    from tunewiz.training.fused import fuse_projections
    from tunewiz.training.greedy import greedy_decode
    from tunewiz.training.layout import column_major_weights

    run = Run(args.run)
    cfg = read_run_config(run)
    hf = HFAnswerer(cfg.base_dir, cfg.family, cfg.system_prompt,
                    adapters={"picked": args.run / "checkpoints" / f"checkpoint-{args.step}"})
    model = hf.model
    records = list(read_jsonl(args.run / "dataset.jsonl"))
    checker = recall.RecallChecker(records, AutoTokenizer.from_pretrained(cfg.base_dir), cfg.family,
                                   cfg.system_prompt, 48, [r["answer"] for r in records if r["split"] == "train"])
    checker.merge_lora = True
    checker.base_general = [""] * len(checker.sets["general"])
    questions = [q for name in ("trained", "reworded", "general") for q in checker.sets[name]]
    limits = checker.answer_limits(questions)
    print(f"{len(questions)} rows ({', '.join(f'{k} {len(v)}' for k, v in checker.sets.items())}); "
          f"answer limits {min(limits)}-{max(limits)} tokens")
    column_major_weights(model)  # as the engine: the layout first, then the fused projections
    fuse_projections(model)

    decoders = {"generate": generate_decode, "greedy": greedy_decode}
    seconds: dict[str, list[float]] = {name: [] for name in decoders}
    answers: dict[str, list[str]] = {}
    for _ in range(args.repeat):
        for name, decoder in decoders.items():
            recall.greedy_decode = decoder
            started = time.perf_counter()
            checker.check(model, args.step, "cpu")
            seconds[name].append(time.perf_counter() - started)
            answers[name] = checker.answers(model, questions, "cpu")
    recall.greedy_decode = greedy_decode
    for name, values in seconds.items():
        print(f"{name:9} median {statistics.median(values):6.2f} s a check  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    same = sum(a == b for a, b in zip(answers["generate"], answers["greedy"]))
    print(f"the same answer from both: {same} of {len(questions)}")

    calls: list[tuple[int, int, float]] = []  # rows, tokens a row, seconds

    class Timed:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, **kwargs):
            started = time.perf_counter()
            output = self.inner(**kwargs)
            calls.append((*kwargs["input_ids"].shape, time.perf_counter() - started))
            return output

    recall.greedy_decode = lambda model, *a, **k: greedy_decode(Timed(model), *a, **k)
    checker.answers(model, questions, "cpu")
    recall.greedy_decode = greedy_decode
    rows, tokens, first = calls[0]
    print(f"greedy: prefill of {rows} rows x {tokens} tokens {first:.2f} s; {len(calls) - 1} decoding steps "
          f"{sum(c[2] for c in calls[1:]):.2f} s, rows a step "
          + " ".join(f"{r}:{s * 1e3:.0f}ms" for r, _, s in calls[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

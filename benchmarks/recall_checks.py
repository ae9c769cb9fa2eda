"""Benchmark (not a test): what one per-checkpoint recall check costs, and where its time goes.

    python benchmarks/recall.py --configs recommended --no-gguf --keep /tmp/recall   # a run to measure on
    python benchmarks/recall_checks.py /tmp/recall/recommended/runs/<id> 64 [--repeat 3]

On the run's own questions (dataset.jsonl: trained, reworded, everyday) and the checkpoint of that step,
with the model built as a CPU run builds it (LoRA adapter loaded, q/k/v and gate/up fused, the adapter
merged for the check), it prints in interleaved repeats (this machine's speed drifts):
- `columns`: the frozen weights stored column-major, as the engine stores them on a CPU (tunewiz/training/layout.py);
- `rows` (the baseline): the weights as transformers loads them, as before 2026-12-07;
then, for each, the prefill alone (one new token) and the cost of one decoding step of the whole batch.
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
    from tunewiz.training.fused import fuse_projections
    from tunewiz.training.layout import column_major_weights
    from tunewiz.training.recall import RecallChecker

    run = Run(args.run)
    cfg = read_run_config(run)
    hf = HFAnswerer(cfg.base_dir, cfg.family, cfg.system_prompt,
                    adapters={"picked": args.run / "checkpoints" / f"checkpoint-{args.step}"})
    model = hf.model
    records = list(read_jsonl(args.run / "dataset.jsonl"))
    checker = RecallChecker(records, AutoTokenizer.from_pretrained(cfg.base_dir), cfg.family, cfg.system_prompt,
                            48, [r["answer"] for r in records if r["split"] == "train"])
    checker.merge_lora = True
    checker.base_general = [""] * len(checker.sets["general"])
    questions = [q for name in ("trained", "reworded", "general") for q in checker.sets[name]]
    own = checker.answer_limits(questions)
    print(f"{len(questions)} rows ({', '.join(f'{k} {len(v)}' for k, v in checker.sets.items())}); "
          f"answer limits {min(own)}-{max(own)} tokens")

    def frozen_weights():
        import torch

        return [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad]

    def use_layout(layout: str) -> None:
        """Every frozen weight in `layout`, the fused projections' weights still views of their fused weight."""
        def placed(weight):
            return weight.contiguous() if layout == "rows" else weight.t().contiguous().t()

        for module in model.modules():
            if getattr(module, "fused_weight", None) is not None:
                module.fused_weight = placed(module.fused_weight)
                row = 0
                for name in module.fused_names:
                    base = getattr(module, name).base_layer
                    base.weight.data = module.fused_weight[row:row + base.weight.shape[0]]
                    row += base.weight.shape[0]
        for weight in frozen_weights():
            if weight.untyped_storage().size() == weight.numel() * weight.element_size():  # not a view
                weight.data = placed(weight.data)

    column_major_weights(model)  # as the engine: the layout first, then the fused projections
    fuse_projections(model)

    def timed(limits) -> float:
        checker.answer_limits = lambda qs: limits
        started = time.perf_counter()
        checker.check(model, args.step, "cpu")
        return time.perf_counter() - started

    layouts = ("rows", "columns")
    seconds: dict[str, list[float]] = {layout: [] for layout in layouts}
    answers: dict[str, list[str]] = {}
    for _ in range(args.repeat):
        for layout in layouts:
            use_layout(layout)
            seconds[layout].append(timed(own))
            answers[layout] = checker.answers(model, questions, "cpu")
    for layout, values in seconds.items():
        print(f"{layout:8} median {statistics.median(values):6.2f} s a check  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    same = sum(a == b for a, b in zip(answers["rows"], answers["columns"]))
    print(f"the same answer in both layouts: {same} of {len(questions)}")
    for layout in layouts:
        use_layout(layout)
        prefill = min(timed([1] * len(own)) for _ in range(2))
        nine = min(timed([9] * len(own)) for _ in range(2))
        print(f"{layout:8} prefill and first token {prefill:.2f} s; one decoding step of all {len(own)} rows "
              f"{(nine - prefill) / 8 * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

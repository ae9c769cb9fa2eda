"""Benchmark (not a test): the engine's CPU choices, each timed against the alternative it replaced.

    python benchmarks/train_cpu_choices.py --reps 4        # SmolLM2-135M, about 12 minutes on 2 cores

The same micro-batches (benchmarks/train.py's synthetic QA samples, batch 4) run forward and
backward through SmolLM2-135M with LoRA (r=16, all linear layers, fp32), one process, the
variants interleaved and their order reversed every other repetition, so that a slower or
busier moment of the machine falls on all of them alike. Reported: the median seconds of one
pass over all the micro-batches, real tokens/s, and the spread.

  attention:  a block-diagonal mask over each packed row (transformers' sdpa) vs one causal
              sdpa call per sample (tunewiz.training.attention.SAMPLE_SDPA)
  logits:     the output layer and loss on every position vs answer positions only
              (tunewiz.training.loss.answer_loss)
  pass:       the budget of tokens per forward pass (hardware.CPU_PASS_TOKENS), 0 = the whole
              micro-batch in one row

The end-to-end comparison with a Trainer + PEFT baseline is benchmarks/train.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--micro-batches", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    args = parser.parse_args()

    import os

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import train as bench
    from tunewiz.basemodel import resolve_base
    from tunewiz.templates import render_sample, tokenize_sample
    from tunewiz.training import data as D
    from tunewiz.training.attention import SAMPLE_SDPA, register
    from tunewiz.hardware import CPU_PASS_TOKENS
    from tunewiz.training.loss import answer_loss

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    folder = resolve_base(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    examples = []
    for pair in bench.synthetic_pairs(args.batch * args.micro_batches * 4, 0, False):
        tokens = tokenize_sample(tokenizer, render_sample("chatml", pair["question"], pair["answer"], "", tokenizer),
                                 2048)
        examples.append(D.Example(tokens.input_ids, tokens.labels))
    micro = [[examples[i] for i in indices]
             for indices in D.micro_batches(len(examples), args.batch, 1, 0, 0, 0)[:args.micro_batches]]
    tokens = sum(len(e.input_ids) for batch in micro for e in batch)

    def rows(budget: int) -> list[dict]:
        return [D.collate_flat(group) for batch in micro
                for group in (D.rows_within(batch, budget) if budget else [batch])]

    register()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    model.train()

    def set_attention(name: str) -> None:
        for module in model.modules():  # every module that holds the config reads the choice from it
            config = getattr(module, "config", None)
            if config is not None and hasattr(config, "_attn_implementation"):
                config._attn_implementation = name

    # (group, label, attention, answer-only logits, pass budget); the engine's choice is last in each group
    engine = (SAMPLE_SDPA, True, CPU_PASS_TOKENS)
    variants = [
        ("attention", "block-diagonal mask", "sdpa", True, CPU_PASS_TOKENS),
        ("attention", "per sample (engine)", *engine),
        ("logits", "every position", SAMPLE_SDPA, False, CPU_PASS_TOKENS),
        ("logits", "answer only (engine)", *engine),
        ("pass", "256 tokens", SAMPLE_SDPA, True, 256),
        ("pass", "whole micro-batch", SAMPLE_SDPA, True, 0),
        ("pass", f"{CPU_PASS_TOKENS} tokens (engine)", *engine),
        ("both", "mask + every position (before)", "sdpa", False, CPU_PASS_TOKENS),
    ]
    unique = sorted({v[2:] for v in variants}, key=str)
    batches = {budget: rows(budget) for budget in {v[4] for v in variants}}

    def seconds(attention: str, by_index: bool, budget: int) -> float:
        set_attention(attention)
        start = time.perf_counter()
        for batch in batches[budget]:
            answer_loss(model, batch, 1000, by_index).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    print(f"{len(micro)} micro-batches of {args.batch}, {tokens} real tokens; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    times: dict[tuple, list[float]] = {v: [] for v in unique}
    for v in unique:
        seconds(*v)  # warm-up
    for rep in range(args.reps):
        for v in unique if rep % 2 == 0 else unique[::-1]:
            times[v].append(seconds(*v))
        print(f"repetition {rep + 1}/{args.reps} done", flush=True)

    print(f"\n{'choice':10} {'variant':32} {'median s':>9} {'real tok/s':>11} {'spread s':>12}")
    for group, label, *key in variants:
        t = times[tuple(key)]
        median = statistics.median(t)
        print(f"{group:10} {label:32} {median:9.2f} {tokens / median:11.1f} {min(t):5.2f}-{max(t):<6.2f}")
    before, after = statistics.median(times[("sdpa", False, CPU_PASS_TOKENS)]), statistics.median(times[engine])
    print(f"engine choices / before (mask, every position): {before / after:.2f}x")


if __name__ == "__main__":
    main()

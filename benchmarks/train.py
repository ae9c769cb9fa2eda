"""Benchmark (not a test): the tunewiz engine against a plain transformers Trainer + PEFT baseline.

    python benchmarks/train.py --model smollm2-135m --batch 4 --steps 8          # 2-core CPU
    python benchmarks/train.py --shape llama3-8b --tokenizer DIR --batch 16      # a GPU, QA-length samples
    python benchmarks/train.py --shape llama3-8b --tokenizer DIR --full-rows --batch 2 --systems engine
    python benchmarks/train.py --shape llama3-8b --tokenizer DIR --batch 16 --systems engine,engine-qlora

Both systems train the same model, data and LoRA config (r=16, alpha=32, dropout 0 unless
--lora-dropout, all linear layers, lr 2e-4) in the same precision. The baseline is what a plain
script does: Trainer with the default collator for causal LM samples (DataCollatorForSeq2Seq,
padding to the longest sample in each batch), samples in random order. The engine is tunewiz's own
loop (`tunewiz.training.engine.main`) on a run folder this script writes.

Reported per system: real (non-padding) tokens/s after the warmup steps, MFU (4·N FLOPs per
real token, N = the base model's weights less the input embedding table, against the GPU's
dense bf16 peak), peak memory (GPU: max allocated; CPU: peak resident set), and the seconds
from start to the end of the first step (model load, and on CUDA the engine's torch.compile).
Each system runs in its own process so peaks do not mix. engine-qlora is the engine with
hardware.quantization = nf4 (bitsandbytes loads the base in 4-bit, so a --shape model's random
weights are written to disk first); the memory estimate (tunewiz.hardware) is printed beside each
engine's peak.

Data: synthetic QA pairs; question 5-40 words, answer 10-300 words, both log-uniform (the
long tail of real QA sets). --full-rows makes every sample exactly --max-seq-len tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = {  # random-weight models of a known architecture (speed only)
    "llama3-8b": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
                  "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
                  "hidden_act": "silu"},
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
WORDS = ("the of and to in is for on with as by at from that this it be are was an or which model data "
         "river capital policy number system answer question result value table office city name year "
         "process report method energy cell market water light music history science north team").split()
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["all-linear"]}


def synthetic_pairs(count: int, seed: int, full_rows: bool) -> list[dict]:
    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        n = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        return " ".join(rng.choice(WORDS) for _ in range(n))

    pairs = []
    for i in range(count):
        question = text(5, 40) + "?"
        answer = " ".join(rng.choice(WORDS) for _ in range(4000)) if full_rows else text(10, 300) + "."
        pairs.append({"id": f"p{i:05d}", "split": "train", "question": question, "answer": answer, "system": ""})
    return pairs


# ---------------------------------------------------------------- model folder

def model_folder(args, work: Path) -> tuple[Path, bool]:
    """(HF folder, random weights?)"""
    if args.shape:
        folder = work / args.shape
        folder.mkdir(parents=True, exist_ok=True)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        config = dict(SHAPES[args.shape], bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        (folder / "config.json").write_text(json.dumps(config))
        tokenizer.save_pretrained(folder)
        return folder, True
    from tunewiz.basemodel import resolve_base

    return resolve_base(args.model), False


# ---------------------------------------------------------------- the two systems

def run_engine(args, folder: Path, random_weights: bool, pairs: list[dict], padded: bool,
               eager: bool = False, quantization: str = "none") -> dict:
    from tunewiz.schema import HyperparametersSection
    from tunewiz.training import engine

    run_dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    hp = vars(HyperparametersSection()) | {
        "lora_r": LORA["r"], "lora_alpha": LORA["alpha"], "lora_dropout": LORA["dropout"],
        "target_modules": LORA["target_modules"], "learning_rate": 2e-4, "lr_scheduler": "constant",
        "warmup_ratio": 0.0, "max_steps": args.warmup + args.steps, "batch_size": args.batch, "grad_accum": 1,
        "logging_steps": 1, "eval_steps": 10**6, "save_steps": 10**6, "seed": 0,
        "gradient_checkpointing": args.gradient_checkpointing}
    config = {"run_id": "bench", "project_dir": str(run_dir), "base_model": {"model": str(folder)},
              "base_dir": str(folder), "random_weights": random_weights,
              "template": {"name": "chatml", "family": "chatml"}, "system_prompt": "",
              "max_seq_len": args.max_seq_len, "train_ids": [p["id"] for p in pairs], "validation_ids": [],
              "lora": LORA, "hyperparameters": hp,
              "hardware": {"device": args.device, "precision": args.precision, "threads": 0, "gpus": 1,
                           "quantization": quantization}}
    (run_dir / "run.json").write_text(json.dumps(config))
    (run_dir / "dataset.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    if padded:
        os.environ["TUNEWIZ_BATCHING"] = "padded"
    if eager:
        os.environ["TUNEWIZ_COMPILE"] = "0"
    started = time.time()
    code = engine.main(run_dir)
    if code != 0:
        raise SystemExit(f"engine failed: {(run_dir / 'status.json').read_text()}")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steady = [m for m in metrics if m["type"] == "train" and m["step"] > args.warmup]
    start = next(m["time"] for m in metrics if m["type"] == "train" and m["step"] == args.warmup)
    tokens = sum(m["tokens"] for m in steady)
    first = next(m["time"] for m in metrics if m["type"] == "train")
    return {"tokens_per_s": tokens / (steady[-1]["time"] - start), "peak_mb": max(m["mem_mb"] for m in metrics),
            "final_loss": steady[-1]["loss"], "to_first_step_s": round(first - started, 1),
            "estimate_mb": round(estimate_mb(args, folder, quantization))}


def estimate_mb(args, folder: Path, quantization: str) -> float:
    """tunewiz's memory estimate for this run (the one the refusal before a run uses)."""
    from tunewiz.hardware import ModelShape, estimate_memory

    config = json.loads((folder / "config.json").read_text())
    h, v = config["hidden_size"], config["vocab_size"]
    params = flops_params(folder, True) + (0 if config.get("tie_word_embeddings") else h * v)
    shape = ModelShape(params=params, hidden=h, layers=config["num_hidden_layers"],
                       intermediate=config["intermediate_size"], vocab=v)
    return estimate_memory(shape, precision=args.precision, batch_size=args.batch, seq_len=args.max_seq_len,
                           lora_r=LORA["r"], lora_dropout=LORA["dropout"],
                           gradient_checkpointing=args.gradient_checkpointing, device=args.device,
                           quantization=quantization).total_mb


def write_random_weights(folder: Path) -> None:
    """Random weights of the folder's config saved beside it (bitsandbytes quantizes weights it loads)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()


def _baseline(args, folder: Path, random_weights: bool, pairs: list[dict]) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                              TrainerCallback, TrainingArguments)

    from tunewiz.templates import render_sample, tokenize_sample

    cuda = args.device == "cuda"
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if random_weights:
        with torch.device("cuda" if cuda else "cpu"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype,
                                                     attn_implementation="sdpa")
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa")
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    rows = []
    for p in pairs:
        tokens = tokenize_sample(tokenizer, render_sample("chatml", p["question"], p["answer"], "", tokenizer),
                                 args.max_seq_len)
        rows.append({"input_ids": tokens.input_ids, "attention_mask": [1] * len(tokens.input_ids),
                     "labels": tokens.labels})

    counts: list[int] = []
    ends: list[float] = []

    class Counting(Trainer):
        def training_step(self, model, inputs, *rest, **kw):
            counts.append(int(inputs["attention_mask"].sum()))
            return super().training_step(model, inputs, *rest, **kw)

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **kw):
            if cuda:
                torch.cuda.synchronize()
            ends.append(time.perf_counter())

    targs = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="bench-baseline-"),
                              per_device_train_batch_size=args.batch, max_steps=args.warmup + args.steps,
                              learning_rate=2e-4, lr_scheduler_type="constant", logging_steps=10**6,
                              save_strategy="no", report_to=[], bf16=args.precision == "bf16",
                              use_cpu=not cuda, seed=0, dataloader_num_workers=0,
                              gradient_checkpointing=args.gradient_checkpointing)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer = Counting(model=model, args=targs, train_dataset=rows,
                       data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True), callbacks=[Clock()])
    trainer.train()
    tokens = sum(counts[args.warmup:])
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    return {"tokens_per_s": tokens / (ends[-1] - ends[args.warmup - 1]), "peak_mb": peak,
            "to_first_step_s": round(ends[0] - started, 1)}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flops_params(folder: Path, random_weights: bool) -> int:
    """N: weights of the base model less the input embedding table (a lookup, no matmul)."""
    config = json.loads((folder / "config.json").read_text())
    h, v, layers = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = h // heads
    per_layer = h * h * 2 + 2 * h * kv * head_dim + 3 * h * config["intermediate_size"] + 2 * h
    return layers * per_layer + h + h * v  # blocks + final norm + lm_head (tied or not, it is a matmul)


def gpu_peak() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def child(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        _child(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # an 8B shape's random weights take 16 GB of disk


def _child(args, work: Path) -> None:
    LORA["dropout"] = args.lora_dropout
    folder, random_weights = model_folder(args, work)
    pairs = synthetic_pairs(args.samples, 0, args.full_rows)
    if args.only == "baseline":
        result = _baseline(args, folder, random_weights, pairs)
    elif args.only in ("engine-qlora", "engine-qlora-eager", "engine-qlora-unfused"):
        if random_weights:
            write_random_weights(folder)
        if args.only == "engine-qlora-unfused":
            os.environ["TUNEWIZ_FUSE"] = "0"
        result = run_engine(args, folder, False, pairs, padded=False, quantization="nf4",
                            eager=args.only == "engine-qlora-eager")
    else:
        if args.only == "engine-unfused":
            os.environ["TUNEWIZ_FUSE"] = "0"
        result = run_engine(args, folder, random_weights, pairs, padded=args.only == "engine-padded",
                            eager=args.only == "engine-eager")
    name, peak = gpu_peak()
    n = flops_params(folder, random_weights)
    result.update(system=args.only, device=name, n_params_flops=n,
                  mfu=(result["tokens_per_s"] * 4 * n / peak) if peak else None)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a base model tunewiz can resolve")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="random weights of this shape instead of --model")
    parser.add_argument("--tokenizer", help="tokenizer folder for --shape")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps first (on CUDA the engine compiles its layers in step 1)")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--full-rows", action="store_true", help="every sample exactly --max-seq-len tokens")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--lora-dropout", type=float, default=LORA["dropout"])
    parser.add_argument("--systems", default="engine,baseline",
                        help="comma list of engine, baseline, engine-padded (the engine's loop with padding), "
                             "engine-eager (the engine without torch.compile), engine-qlora (a 4-bit NF4 base), "
                             "engine-qlora-eager (the same, not compiled), engine-unfused and engine-qlora-unfused "
                             "(q/k/v and gate/up as separate projections)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "auto" or args.precision == "auto":
        import torch

        cuda = torch.cuda.is_available()
        args.device = args.device if args.device != "auto" else ("cuda" if cuda else "cpu")
        if args.precision == "auto":
            args.precision = "bf16" if args.device == "cuda" else "fp32"
    if args.only:
        child(args)
        return
    results = []
    for system in args.systems.split(","):
        argv = [a for a in sys.argv[1:]] + ["--only", system, "--device", args.device, "--precision", args.precision]
        out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
        if os.environ.get("BENCH_LOG"):  # keep each system's own output (step lines) for a closer look
            Path(os.environ["BENCH_LOG"], f"{system}.log").write_text(out.stdout + out.stderr)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{system} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            continue
        results.append(json.loads(line[7:]))
    print(f"\n{'system':15} {'real tok/s':>12} {'MFU':>7} {'peak MB':>10} {'estimate MB':>12} {'to 1st step s':>14}")
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        print(f"{r['system']:15} {r['tokens_per_s']:12,.1f} {mfu:>7} {r['peak_mb']:10,.0f} "
              f"{r.get('estimate_mb', '-'):>12} {r.get('to_first_step_s', '-'):>14}")
    by = {r["system"]: r for r in results}
    if "engine" in by and "engine-qlora" in by:
        print(f"QLoRA / bf16 LoRA time per token: {by['engine']['tokens_per_s'] / by['engine-qlora']['tokens_per_s']:.2f}x")
    if "engine" in by and "baseline" in by:
        print(f"engine / baseline real tokens/s: {by['engine']['tokens_per_s'] / by['baseline']['tokens_per_s']:.2f}x")
    print(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "only"}, "results": results}))


if __name__ == "__main__":
    main()

"""Benchmark (not a test): the memory estimate beside the peak a real run reaches.

    python benchmarks/memory.py                                  # 2-core CPU, SmolLM2-135M
    python benchmarks/memory.py --cases 1024x4,2048x1:gc         # chosen cases
    python benchmarks/memory.py --shape llama3-8b --tokenizer DIR --cases 2048x1,2048x4:gc   # a GPU

Each case trains a few steps of the engine in its own process (benchmarks/train.py
--systems engine) on samples exactly max_seq_len tokens long, the worst case the
estimate assumes, and reads the peak the engine logs (CPU: peak resident set; GPU: max
allocated). A case is SEQxBATCH, with ':d0' for LoRA dropout 0 (else 0.05, the default
setting) and ':gc' for gradient checkpointing. The estimate should be above every peak,
and not far above: it decides refusals and the recommended batch size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CASES = "512x1,512x8,1024x1,2048x1,512x1:d0,2048x1:d0,512x1:gc,2048x1:gc"
DEFAULT_DROPOUT = 0.05


def parse_case(text: str) -> dict:
    size, *flags = text.split(":")
    seq, batch = (int(v) for v in size.split("x"))
    return {"seq": seq, "batch": batch, "dropout": 0.0 if "d0" in flags else DEFAULT_DROPOUT, "gc": "gc" in flags}


def measured_peak(args, case: dict) -> float | None:
    argv = [sys.executable, str(ROOT / "benchmarks" / "train.py"), "--systems", "engine", "--full-rows",
            "--max-seq-len", str(case["seq"]), "--batch", str(case["batch"]), "--samples", str(8 * case["batch"]),
            "--warmup", "1", "--steps", str(args.steps), "--lora-dropout", str(case["dropout"]),
            "--device", args.device, "--precision", args.precision]
    argv += ["--shape", args.shape, "--tokenizer", args.tokenizer] if args.shape else ["--model", args.model]
    argv += ["--gradient-checkpointing"] if case["gc"] else []
    out = subprocess.run(argv, capture_output=True, text=True)
    line = next((l for l in out.stdout.splitlines() if l.startswith("{")), None)
    if out.returncode != 0 or line is None:
        print(f"  case failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        return None
    results = json.loads(line)["results"]
    return results[0]["peak_mb"] if results else None


def shape_of(args):
    from tunewiz.hardware import ModelShape, model_shape

    if args.shape:
        import tempfile

        from train import SHAPES, flops_params  # benchmarks/train.py

        config = SHAPES[args.shape]
        folder = Path(tempfile.mkdtemp(prefix="bench-shape-"))
        (folder / "config.json").write_text(json.dumps(config))
        h, v = config["hidden_size"], config["vocab_size"]
        # flops_params leaves out the input embedding table; its weights are in memory all the same.
        return ModelShape(params=flops_params(folder, True) + h * v, hidden=h, layers=config["num_hidden_layers"],
                          intermediate=config["intermediate_size"], vocab=v)
    from tunewiz.basemodel import resolve_base

    return model_shape(str(resolve_base(args.model)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a base model tunewiz can resolve")
    parser.add_argument("--shape", help="random weights of a benchmarks/train.py shape instead of --model")
    parser.add_argument("--tokenizer", help="tokenizer folder for --shape")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--steps", type=int, default=3, help="steps after the first (peaks rise over a few steps)")
    args = parser.parse_args()
    if args.device == "auto" or args.precision == "auto":
        import torch

        cuda = torch.cuda.is_available()
        args.device = args.device if args.device != "auto" else ("cuda" if cuda else "cpu")
        args.precision = args.precision if args.precision != "auto" else ("bf16" if args.device == "cuda" else "fp32")

    from tunewiz.hardware import estimate_memory

    shape = shape_of(args)
    print(f"{args.model if not args.shape else args.shape} on {args.device} ({args.precision}): {shape}")
    print(f"{'case':16} {'estimate MB':>12} {'measured MB':>12} {'estimate/measured':>18}")
    rows = []
    for text in args.cases.split(","):
        case = parse_case(text)
        estimate = estimate_memory(shape, precision=args.precision, batch_size=case["batch"], seq_len=case["seq"],
                                   lora_r=16, lora_dropout=case["dropout"], gradient_checkpointing=case["gc"],
                                   device=args.device).total_mb
        peak = measured_peak(args, case)
        ratio = f"{estimate / peak:.2f}" if peak else "-"
        print(f"{text:16} {estimate:12,.0f} {peak or 0:12,.0f} {ratio:>18}", flush=True)
        rows.append({"case": text, "estimate_mb": round(estimate), "measured_mb": peak})
    print(json.dumps({"device": args.device, "precision": args.precision, "rows": rows}))


if __name__ == "__main__":
    main()

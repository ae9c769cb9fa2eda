"""Where one LoRA training step spends its time (a measurement script, not a test).

    python benchmarks/train_profile.py --shape llama3-8b --tokenizer .bench/tok --out DIR

Builds a random-weight model of the shape, wraps it with PEFT LoRA (r=16, all-linear, as
benchmarks/train.py does), then:
  1. times one optimizer step (forward, backward, clip, AdamW) for several batch layouts
     and several ways of running the step, each after warm-up, median of a few steps;
  2. profiles one step with torch.profiler and prints the top ops by CPU and CUDA time.
Results go to stdout and DIR/profile.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 49152, "max_position_embeddings": 4096, "tie_word_embeddings": False}


def build(shape: dict, tokenizer, device: str, dtype, adapter_fp32: bool):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**{k: v for k, v in shape.items() if k not in ("architectures", "model_type")},
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.config.use_cache = False
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora, autocast_adapter_dtype=adapter_fp32)
    return model.to(device)


def set_inductor_options(options: list[str]) -> None:
    """KEY=VALUE strings (VALUE a Python literal) onto torch._inductor.config, as the run prints them."""
    import ast

    import torch._inductor.config as inductor

    for option in options:
        key, _, value = option.partition("=")
        *path, name = key.split(".")
        target = inductor
        for part in path:
            target = getattr(target, part)
        if not hasattr(target, name):
            raise SystemExit(f"--inductor {option}: torch._inductor.config has no {key}")
        setattr(target, name, ast.literal_eval(value))
        print(f"torch._inductor.config.{key} = {getattr(target, name)!r}", flush=True)


def main() -> None:
    import torch
    from transformers import AutoTokenizer

    import train as bench
    from tunewiz.templates import render_sample, tokenize_sample
    from tunewiz.training import data as D
    from tunewiz.training.loss import answer_loss

    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="llama3-8b")
    parser.add_argument("--tokenizer", default=str(ROOT / ".bench" / "tok"))
    parser.add_argument("--out", default=".")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile on each decoder layer")
    parser.add_argument("--engine-only", action="store_true",
                        help="only the engine's way on a GPU (fp32 adapters, no input cast, compiled layers), "
                             "timed and profiled on QA rows at batch 16")
    parser.add_argument("--graphs", default="",
                        help="comma-separated ways to run 13 varied batches of 16 QA rows, three passes each: "
                             "layers (the engine's compiled layers), model (the whole loss compiled), "
                             "model-graphs (the same under CUDA graphs, mode reduce-overhead), layers-varlen (the "
                             "compiled layers with PyTorch's flash varlen attention instead of sdpa's mask), layers-fused "
                             "(the compiled layers with q/k/v and gate/up fused, tunewiz/training/fused.py)")
    parser.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                        help="set torch._inductor.config.KEY (dotted keys too) before compiling, "
                             "e.g. combo_kernels=True")
    args = parser.parse_args()
    set_inductor_options(args.inductor)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    shape = TINY if args.shape == "tiny" else bench.SHAPES[args.shape]
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    results: dict = {"env": {"torch": torch.__version__}}
    import peft
    import transformers

    results["env"].update(transformers=transformers.__version__, peft=peft.__version__,
                          gpu=torch.cuda.get_device_name() if cuda else "cpu")
    print(results["env"], flush=True)

    def examples(full_rows: bool, count: int):
        pairs = bench.synthetic_pairs(count, 0, full_rows)
        out = []
        for p in pairs:
            t = tokenize_sample(tokenizer, render_sample("chatml", p["question"], p["answer"], "", tokenizer), 2048)
            out.append(D.Example(t.input_ids, t.labels))
        return out

    qa, full = examples(False, 64), examples(True, 4)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    layouts = {
        "qa8-packed": D.collate_flat(qa[:8]),
        "qa8-padded": D.collate_padded(qa[:8], pad_id),
        "qa32-packed": D.collate_flat(qa[8:40]),
        "qa16-packed": D.collate_flat(qa[40:56]),
        "full2x2048": D.collate_flat(full[:2]),
    }
    for name, b in layouts.items():
        print(name, {k: tuple(v.shape) for k, v in b.items()}, "real", D.real_tokens(b), flush=True)

    def make_step(model, mode: str):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=2e-4, **({"fused": True} if cuda else {"foreach": True}))
        autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=cuda and mode != "bf16-noautocast")

        def step(batch):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            items = int((batch["labels"][:, 1:] != -100).sum())
            with autocast:  # answer-logits: lm_head and the loss only where a label is (the engine's way)
                loss = answer_loss(model, batch, items, by_index=mode in ("answer-logits", "engine-by-index"))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    def timed(step, batch, n: int) -> float:
        for _ in range(2):
            step(batch)
        times = []
        for _ in range(n):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            float(step(batch))
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def run_mode(model, mode: str, names: list[str]) -> None:
        step = make_step(model, mode)
        for name in names:
            batch = layouts[name]
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            sec = timed(step, batch, args.steps)
            tokens = D.real_tokens(batch)
            row = {"mode": mode, "layout": name, "ms": round(sec * 1e3, 1), "real_tok_s": round(tokens / sec),
                   "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None}
            results.setdefault("timings", []).append(row)
            print("TIME", json.dumps(row), flush=True)

    def profile(model, mode: str, name: str) -> None:
        from torch.profiler import ProfilerActivity, profile as prof

        step = make_step(model, mode)
        batch = layouts[name]
        step(batch)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with prof(activities=acts) as p:
            float(step(batch))
            if cuda:
                torch.cuda.synchronize()
        av = p.key_averages()
        by_cpu = av.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60)
        by_cuda = av.table(sort_by="self_cuda_time_total" if cuda else "cpu_time_total", row_limit=25,
                           max_name_column_width=60)
        text = f"== {mode} {name} by self CPU\n{by_cpu}\n== by self CUDA\n{by_cuda}\n"
        (Path(args.out) / f"profile-{mode}-{name}.txt").write_text(text)
        print(text[:6000], flush=True)
        cuda_total = sum(e.self_device_time_total for e in av) / 1e3 if cuda else 0
        cpu_total = sum(e.self_cpu_time_total for e in av) / 1e3
        calls = sum(e.count for e in av)
        results.setdefault("profiles", []).append({"mode": mode, "layout": name, "self_cuda_ms": round(cuda_total, 1),
                                                   "self_cpu_ms": round(cpu_total, 1), "op_calls": calls})
        print("PROFILE", results["profiles"][-1], flush=True)

    def engine_way(model) -> None:
        from tunewiz.training.engine import compile_layers

        for module in model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                module.cast_input_dtype_enabled = False
        t = time.perf_counter()
        compiled = compile_layers(model, device)
        run_mode(model, "engine-compiled", ["qa16-packed"])
        results["compile_s"] = round(time.perf_counter() - t, 1)
        print("compiled layers:", compiled, "first run incl. compile", results["compile_s"], "s", flush=True)
        run_mode(model, "engine-compiled", ["qa8-packed", "qa32-packed", "full2x2048"])
        profile(model, "engine-compiled", "qa16-packed")
        # The engine meets a new row length almost every step; the runs above repeat one batch.
        # Thirteen batches of 16 different QA rows: a first pass (lengths not seen yet), then a second.
        for multiple in (64, 512):
            batches = [D.collate_flat(qa[i:i + 16], multiple, pad_id) for i in range(0, 49, 4)]
            for mode in ("engine-compiled", "engine-by-index"):
                step = make_step(model, mode)
                for attempt in ("first", "second"):
                    tokens, t = 0, time.perf_counter()
                    for batch in batches:
                        float(step(batch))
                        tokens += D.real_tokens(batch)
                    if cuda:
                        torch.cuda.synchronize()
                    sec = (time.perf_counter() - t) / len(batches)
                    row = {"mode": f"{mode}-varied-{attempt}", "layout": f"qa16-x{multiple}", "ms": round(sec * 1e3, 1),
                           "real_tok_s": round(tokens / len(batches) / sec), "peak_mb": None}
                    results.setdefault("timings", []).append(row)
                    print("TIME", json.dumps(row), flush=True)
        (Path(args.out) / "profile.json").write_text(json.dumps(results, indent=1))
        for r in results.get("timings", []):
            print(f"{r['mode']:21} {r['layout']:14} {r['ms']:9} {r['real_tok_s']:12} {r['peak_mb']}")

    if args.graphs:  # each way builds its own model (compiling changes the modules in place)
        for way in args.graphs.split(","):
            graphs_way(way, shape, tokenizer, device, dtype, qa, pad_id, results, args.out)
        return
    t0 = time.perf_counter()
    model = build(shape, tokenizer, device, dtype, adapter_fp32=True)
    print(f"built in {time.perf_counter() - t0:.1f}s;", "adapter dtypes:",
          sorted({str(p.dtype) for n, p in model.named_parameters() if p.requires_grad}), flush=True)
    if args.engine_only:
        engine_way(model)
        return
    profile(model, "fp32-adapters", "qa8-packed")
    run_mode(model, "fp32-adapters", list(layouts))
    # no cast of activations to fp32 in front of each adapter (fp32 adapter weights stay the masters)
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False
    run_mode(model, "no-input-cast", ["qa8-packed", "full2x2048"])
    run_mode(model, "answer-logits", ["qa8-packed", "full2x2048"])
    del model
    if cuda:
        torch.cuda.empty_cache()
    model = build(shape, tokenizer, device, dtype, adapter_fp32=False)
    print("adapter dtypes:", sorted({str(p.dtype) for n, p in model.named_parameters() if p.requires_grad}))
    run_mode(model, "bf16-noautocast", ["qa8-packed", "qa32-packed", "full2x2048"])
    profile(model, "bf16-noautocast", "qa8-packed")
    if args.compile:
        layers = model.base_model.model.model.layers
        t = time.perf_counter()
        for layer in layers:
            layer.compile(dynamic=True)
        try:
            run_mode(model, "bf16-compiled-layers", ["qa8-packed"])
            results["compile_s"] = round(time.perf_counter() - t, 1)
            run_mode(model, "bf16-compiled-layers", ["qa32-packed", "full2x2048"])
        except Exception as exc:  # report and carry on: this is a probe
            results["compile_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            print("COMPILE FAILED", results["compile_error"], flush=True)
    (Path(args.out) / "profile.json").write_text(json.dumps(results, indent=1))
    print("\nmode                  layout          ms/step   real tok/s   peak MB")
    for r in results.get("timings", []):
        print(f"{r['mode']:21} {r['layout']:14} {r['ms']:9} {r['real_tok_s']:12} {r['peak_mb']}")
    print({k: v for k, v in results.items() if k in ("compile_s", "compile_error", "profiles")})


def host_inputs(batch: dict, pad_id: int) -> dict:
    """A packed row's inputs with everything data-dependent computed on the host: the positions
    whose logits the loss reads (`keep`, padded with filler positions to a rounded count so that
    CUDA graphs meet few shapes), their targets (-100 for the padding), and a sample id per token
    for the block-diagonal mask."""
    import torch
    import torch.nn.functional as F
    from tunewiz.training import data as D

    labels = batch["labels"]
    targets = F.pad(labels[:, 1:], (0, 1), value=-100)[0]
    keep = (targets != -100).nonzero().flatten()
    size = -(-len(keep) // D.row_multiple(len(keep))) * D.row_multiple(len(keep))
    spare = len(targets) - 1  # the row's last position: its target is always -100
    keep_targets = torch.cat([targets[keep], torch.full((size - len(keep),), -100)])
    keep = torch.cat([keep, torch.full((size - len(keep),), spare)])
    sample = (batch["position_ids"][0] == 0).cumsum(0)
    return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "keep": keep,
            "keep_targets": keep_targets, "sample": sample}


VARLEN = "bench_varlen"


def register_varlen() -> None:
    """An attention for packed rows through PyTorch's own flash varlen kernel
    (torch.nn.attention.varlen, torch 2.10+): each sample attends to itself only, no T x T mask is
    built and no score across samples is computed. Needs cu_seq_lens_q and max_length_q passed
    to the model (transformers hands them on to the attention)."""
    import inspect

    from torch.nn.attention.varlen import varlen_attn
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    causal = ({"is_causal": True} if "is_causal" in inspect.signature(varlen_attn).parameters
              else {"window_size": (-1, 0)})

    def forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [tokens, heads, head_dim]
        groups = q.shape[1] // k.shape[1]
        if groups > 1:
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        cu, longest = kwargs["cu_seq_lens_q"], kwargs["max_length_q"]
        out = varlen_attn(q, k, v, cu, cu, longest, longest, scale=scaling, **causal)
        return out[None], None

    AttentionInterface.register(VARLEN, forward)
    AttentionMaskInterface.register(VARLEN, lambda *args, **kwargs: None)


def varlen_inputs(batch: dict, device: str) -> dict:
    """cu_seq_lens (sample starts, padded to 64 entries with the row's end: empty samples, so the
    compiled layer meets one shape) and the longest sample's bound (the row's length, bucketed)."""
    import torch

    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist() + [len(positions)]
    starts += [len(positions)] * (64 - len(starts))
    cu = torch.tensor(starts, dtype=torch.int32, device=device)
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": len(positions),
            "max_length_k": len(positions)}


def graphs_way(way: str, shape: dict, tokenizer, device: str, dtype, qa, pad_id: int, results: dict,
               out: str) -> None:
    """One way of running compiled steps over varied QA batches: ms/step on each of three passes."""
    import torch
    import torch.nn.functional as F
    from tunewiz.training import data as D
    from tunewiz.training.engine import compile_layers
    from tunewiz.training.loss import answer_loss

    if device == "cuda":
        torch.cuda.empty_cache()
    model = build(shape, tokenizer, device, dtype, adapter_fp32=True)
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False
    rows = [qa[i:i + 16] for i in range(0, 49, 4)]
    batches = []
    for group in rows:
        real = sum(len(e.input_ids) for e in group)
        batch = D.collate_flat(group, D.row_multiple(real), pad_id)
        batches.append((batch, host_inputs(batch, pad_id), real, D.answer_tokens(batch)))
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = device == "cuda"
    opt = torch.optim.AdamW(params, lr=2e-4, **({"fused": True} if cuda else {"foreach": True}))
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=cuda)

    def summed_loss(input_ids, position_ids, keep, keep_targets, sample):
        tokens = input_ids.shape[1]
        causal = torch.ones(tokens, tokens, dtype=torch.bool, device=input_ids.device).tril()
        mask = (causal & (sample[:, None] == sample[None, :]))[None, None]
        logits = model(input_ids=input_ids, position_ids=position_ids, attention_mask=mask, logits_to_keep=keep,
                       use_cache=False).logits
        return F.cross_entropy(logits.float().flatten(0, 1), keep_targets, ignore_index=-100, reduction="sum")

    graphs = way == "model-graphs" and cuda
    if way == "layers-varlen":
        register_varlen()
        model.config._attn_implementation = VARLEN
        for module in model.modules():
            if hasattr(module, "config") and hasattr(module.config, "_attn_implementation"):
                module.config._attn_implementation = VARLEN
    if way == "layers-fused":
        from tunewiz.training.fused import fuse_projections

        print(f"{fuse_projections(model)} projection groups fused", flush=True)
    if way in ("layers", "layers-varlen", "layers-fused"):
        compile_layers(model, device)
        loss_of = None
    else:
        loss_of = torch.compile(summed_loss, dynamic=True, mode="reduce-overhead" if graphs else None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t_start = time.perf_counter()
    first_loss = None  # the same for every way (same seed, same first batch): a check that they agree
    for attempt in ("first", "second", "third"):
        tokens, t = 0, time.perf_counter()
        for batch, host, real, items in batches:
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast:
                if loss_of is None:
                    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                    if way == "layers-varlen":
                        inputs.update(varlen_inputs(batch, device))
                    loss = answer_loss(model, inputs, items, by_index=True)
                else:
                    loss = loss_of(**{k: v.to(device, non_blocking=True) for k, v in host.items()}) / items
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
            value = float(loss.detach())  # the engine reads the loss once per step
            first_loss = first_loss if first_loss is not None else value
            tokens += real
        if cuda:
            torch.cuda.synchronize()
        sec = (time.perf_counter() - t) / len(batches)
        row = {"mode": f"{way}-{attempt}", "layout": "qa16-varied", "ms": round(sec * 1e3, 1),
               "real_tok_s": round(tokens / len(batches) / sec),
               "peak_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
               "since_start_s": round(time.perf_counter() - t_start, 1), "first_loss": round(first_loss, 5)}
        results.setdefault("timings", []).append(row)
        print("TIME", json.dumps(row), flush=True)
    (Path(out) / "profile.json").write_text(json.dumps(results, indent=1))
    model = opt = loss_of = None  # frees the 8B shape before the next way builds its own
    import gc

    gc.collect()
    torch._dynamo.reset()


if __name__ == "__main__":
    main()

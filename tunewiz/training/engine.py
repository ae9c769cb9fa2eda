"""The training process: `python -m tunewiz.training.engine RUN_DIR [--resume]`.

Everything it needs is in the run folder (run.json, dataset.jsonl), so it runs the
same from the CLI, the TUI, torchrun or a test. It writes status.json, one
metrics.jsonl line per logging step, an eval line every eval_steps and checkpoints
every save_steps. Several processes (torchrun) share the work through DDP; only
rank 0 writes files.

Stopping: a STOP file in the run folder (written by `tunewiz stop`) or SIGTERM/SIGINT
makes it finish the step, save a checkpoint and exit with state 'stopped'. SIGHUP is
ignored: the process runs in its own session anyway.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from tunewiz.errors import TunewizError
from tunewiz.hardware import CPU_PASS_TOKENS
from tunewiz.runs import DATA_FILE, STOP_FILE, Run, RunSpec, RunStatus, process_start, read_jsonl
from tunewiz.training import checkpoints as ckpt
from tunewiz.training import data as D
from tunewiz.training.attention import pick_attention
from tunewiz.training.divergence import DivergenceGuard
from tunewiz.training.loss import answer_loss, keeps_logits_by_index
from tunewiz.training.sharding import full_grad_norm, gather_state



class TrainingFailed(Exception):
    """Training cannot go on; the message goes into status.json for the user."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Dist:
    """This process's place among the training processes (torchrun sets the variables)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.main = self.rank == 0

    def init(self, device_type: str) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if device_type == "cuda":
                import torch

                # Binding each process to its own GPU up front: NCCL otherwise guesses it from the rank.
                torch.cuda.set_device(self.local_rank)
                dist.init_process_group("nccl", device_id=torch.device("cuda", self.local_rank))
            else:
                dist.init_process_group("gloo")

    def sum(self, values: list[float], device: Any) -> list[float]:
        """Sum numbers over all processes (identity with one process)."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class Reporter:
    """Writes status.json and metrics.jsonl (rank 0 only) and the log lines."""

    def __init__(self, run: Run, dist: Dist) -> None:
        self.run, self.dist = run, dist
        self.tracker = None  # [tracking]: a copy of each metrics record (tunewiz.training.tracking)
        self.status = run.read_status() if run.status_path.exists() else RunStatus()
        if self.status.state == "unknown":
            self.status = RunStatus()

    def log(self, text: str) -> None:
        if self.dist.local_rank == 0:  # one process a node: each node's log tells its own story
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def set(self, **changes: Any) -> None:
        if not self.dist.main:
            return
        for key, value in changes.items():
            setattr(self.status, key, value)
        leader = os.getpgid(0)  # the session leader: the engine itself, or torchrun
        if self.status.pid != leader or not self.status.pid_start:
            self.status.pid, self.status.pid_start = leader, process_start(leader)
        self.status.host = socket.gethostname()
        self.run.write_status(self.status)

    def metrics(self, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with self.run.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        if self.tracker is not None:
            self.tracker.log(record)

    def close(self) -> None:
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            tracker.close()


def main(run_dir: str | os.PathLike[str], resume: bool = False) -> int:
    run = Run(Path(run_dir))
    dist = Dist()
    report = Reporter(run, dist)
    stop = {"requested": False}

    def request_stop(signum, frame):  # noqa: ARG001 - signal handler signature
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        outcome = train(run, dist, report, stop, resume)
        return 0 if outcome in ("finished", "stopped") else 1
    except (TrainingFailed, ckpt.DiskFullError) as exc:
        report.log(f"FAILED: {exc}")
        report.set(state="failed", message=str(exc), ended=now_iso())
        return 1
    except Exception as exc:  # anything else: the log gets the traceback, the status a short reason
        traceback.print_exc()
        report.set(state="failed", message=f"{type(exc).__name__}: {exc} (see train.log)", ended=now_iso())
        return 1
    finally:
        report.close()
        dist.close()


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingFailed("hardware.device is 'cuda' but torch sees no CUDA GPU")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainingFailed("hardware.device is 'mps' but MPS is not available on this machine")
    return requested


def pick_precision(requested: str, device: str) -> str:
    import torch

    if requested != "auto":
        if requested == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainingFailed("hardware.precision is bf16 but this GPU does not support it; use fp16")
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"  # CPUs without AMX run bf16 matmuls slower than fp32


def load_model(cfg: RunSpec, device: str, precision: str, dist: Dist):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunewiz.models import quiet_model_loading

    quiet_model_loading()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    attention = pick_attention(device)
    if cfg.extra.get("random_weights"):  # benchmarks: a model of the right shape without a weights file
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(cfg.base_dir)
        config._attn_implementation = attention
        with torch.device(f"cuda:{dist.local_rank}" if device == "cuda" else "cpu"):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attention)
    elif cfg.hardware.get("quantization") == "nf4":
        model = _load_nf4(cfg, device, dtype, attention, dist)
    else:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_dir, dtype=dtype, attn_implementation=attention)
    model.config.use_cache = False
    hp = cfg.hyperparameters
    if hp["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = cfg.lora
    targets = lora["target_modules"]
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules="all-linear" if targets == ["all-linear"] else targets,
                        task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:
        raise TrainingFailed(f"hyperparameters.target_modules: {exc}") from None
    target = torch.device(f"cuda:{dist.local_rank}" if device == "cuda" else device)
    if cfg.hardware.get("quantization") != "nf4":  # a 4-bit model was placed when loaded and cannot move
        model.to(target)
    return model, target, attention


def compile_layers(model, device: str) -> int:
    """torch.compile each decoder layer on CUDA; returns how many were compiled.

    Eager PyTorch launches about 50,000 small kernels per step for an 8B model with
    LoRA on every linear layer; the CPU cannot issue them as fast as the GPU runs them,
    so a step took ~0.3 s even for 1,000 tokens. A compiled layer is a few fused
    kernels. Layers of one class share one compiled graph (compiled once, a minute or
    two on the first step), and the module tree and state_dict stay as they are, so
    checkpoints do not change. CPU runs stay eager (compiling there costs more than it
    saves on short runs). TUNEWIZ_COMPILE=0 turns it off.
    """
    if device != "cuda" or os.environ.get("TUNEWIZ_COMPILE", "1") == "0":
        return 0
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # a layer that cannot be compiled runs eagerly
    layer_classes = set(getattr(model.get_base_model(), "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    for layer in layers:
        layer.compile(dynamic=True)  # packed rows change length every step
    return len(layers)


def _load_nf4(cfg: RunSpec, device: str, dtype, attention: str, dist: Dist):
    """QLoRA: the base model's linear layers in 4-bit NF4 (double quantization, 16-bit compute), placed
    on this process's device; LoRA trains in full precision on top. The export still merges into the
    16/32-bit base folder, never into these 4-bit weights."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = torch.bfloat16 if dtype == torch.float32 else dtype
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=compute)
    place = {"": dist.local_rank} if device == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(cfg.base_dir, quantization_config=quantization, device_map=place,
                                                 dtype=dtype, attn_implementation=attention)
    # Not peft's prepare_model_for_kbit_training: it upcasts the embeddings, the output layer and the
    # norms to fp32 (on an 8B model 4 GB more, and 2.8x the bf16 run's time per token on an H200).
    # Checkpointing through frozen 4-bit layers needs only inputs that require grad.
    if cfg.hyperparameters.get("gradient_checkpointing"):
        model.enable_input_require_grads()
    return model


def build_optimizer(model, cfg: RunSpec, max_steps: int, device: str):
    import torch
    from transformers import get_scheduler

    hp = cfg.hyperparameters
    params = [p for p in model.parameters() if p.requires_grad]
    extra = {"fused": True} if device == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(params, lr=hp["learning_rate"], weight_decay=hp["weight_decay"], **extra)
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[hp["lr_scheduler"]]
    warmup = int(round(hp["warmup_ratio"] * max_steps))
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=max_steps)
    return optimizer, scheduler


def read_examples(run: Run, split: str) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(run.dir / DATA_FILE) if r["split"] == split]


def train(run: Run, dist: Dist, report: Reporter, stop: dict[str, bool], resume: bool) -> str:
    """Train the run to its end (or a stop); 'finished' or 'stopped'."""
    trainer = Trainer(run, dist, report, stop)
    trainer.setup(resume)
    return trainer.loop()


class Trainer:
    """One training process: setup steps (device, data, model, optimizer, resume, checks), then a loop
    of optimizer steps, each logged, and checkpoints, each checked. Every process of a run builds one."""

    def __init__(self, run: Run, dist: Dist, report: Reporter, stop: dict[str, bool]) -> None:
        self.run, self.dist, self.report, self.stop = run, dist, report, stop
        self.cfg = run.read_spec()
        self.hp = self.cfg.hyperparameters
        self.start_step = 0
        self.guard = DivergenceGuard()
        self.checker = None
        self.last_val: float | None = None

    # -- setup, in order ----------------------------------------------------------------------------
    def setup(self, resume: bool) -> None:
        self.report.set(state="starting", message="loading the base model",
                        started=self.report.status.started or now_iso(), ended="",
                        resumed=now_iso() if resume else self.report.status.resumed)
        self.setup_device()
        self.load_data()
        self.build_model()
        self.build_optimizer()
        if resume:
            self.resume()
        if self.dist.main:
            self.report.tracker = _open_tracker(self.run, self.cfg, self.start_step)
        self.prepare_checks()
        self.wrap_for_processes()
        self.plan_batches()

    def setup_device(self) -> None:
        import torch

        hw, dist = self.cfg.hardware, self.dist
        self.device = pick_device(hw["device"])
        self.precision = pick_precision(hw["precision"], self.device)
        self.threads = hw["threads"] or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        torch.set_num_threads(self.threads)
        dist.init(self.device)
        torch.manual_seed(self.hp["seed"] + dist.rank)

    def load_data(self) -> None:
        """The base model folder (converted on first use), its tokenizer and template, the tokenized samples."""
        from transformers import AutoTokenizer

        from tunewiz.templates import resolve_family

        cfg, run = self.cfg, self.run
        converted = False
        if not cfg.base_dir or not Path(cfg.base_dir).is_dir():  # not converted yet, or not on this node
            from tunewiz.basemodel import resolve_base

            cfg.base_dir = str(resolve_base(cfg.model_name, cfg.base_model.get("gguf_file", ""),
                                            Path(cfg.project_dir), progress=self.report.log))
            converted = True
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.base_dir)
        self.family = resolve_family(cfg.template["name"], self.tokenizer)
        if self.dist.main and (cfg.family != self.family or converted):
            cfg.template["family"] = self.family
            run.write_spec(cfg)  # export, samples and chat read the folder and the family from here

        max_len = cfg.max_seq_len
        self.train_set = D.tokenize_records(read_examples(run, "train"), self.tokenizer, self.family,
                                            cfg.system_prompt, max_len)
        self.val_set = D.tokenize_records(read_examples(run, "validation"), self.tokenizer, self.family,
                                          cfg.system_prompt, max_len)
        train_set, val_set = self.train_set, self.val_set
        rate = self.hp.get("question_dropout", 0.0)  # run.json of an older version has none
        self.question_dropout = (D.QuestionDropout(rate, self.hp["seed"], self.tokenizer, self.family,
                                                   cfg.system_prompt, max_len) if rate > 0 else None)
        if not train_set.examples:
            raise TrainingFailed("no training samples: every pair is rejected, or every prompt is longer than "
                                 f"template.max_seq_len ({max_len})")
        self.report.log(f"{len(train_set.examples)} train / {len(val_set.examples)} validation samples; "
                        f"{train_set.truncated + val_set.truncated} truncated to {max_len} tokens, "
                        f"{train_set.dropped + val_set.dropped} dropped (no answer token left); "
                        f"template {self.family}")
        if self.question_dropout:
            self.report.log(f"question dropout {rate:g}: each pass leaves out about {rate:.0%} of a question's "
                            "lowercase words, different ones each pass")

    def build_model(self) -> None:
        """The base model with LoRA, placed, sharded or compiled as the run asks."""
        cfg, dist = self.cfg, self.dist
        self.model, self.target, self.attention = load_model(cfg, self.device, self.precision, dist)
        self.quantized = cfg.hardware.get("quantization") == "nf4"
        self.sharded = cfg.hardware.get("sharding") == "fsdp" and dist.world > 1
        if self.sharded:
            from tunewiz.training.sharding import shard_model

            self.report.log(f"FSDP: {shard_model(self.model, self.precision)} layers sharded over "
                            f"{dist.world} processes")
        # 4-bit layers too: QLoRA went from 1.37x to 1.04x bf16's time. Sharded layers stay eager: FSDP's
        # gather hooks inside compiled layers are not checked yet (issue: GPU figures on two H200s).
        # q/k/v and gate/up as one matmul each (tunewiz/training/fused.py): +12 % real tokens/s on QA rows and
        # +5 % on full rows (8B shape, one H100); on 2 CPU cores within the noise (-3.5 % a step, SmolLM2-135M),
        # kept there too so that CPU runs take the GPU's path. 4-bit layers too (fewer dequantizing matmuls).
        # Not over sharded layers: FSDP shards each projection's weight on its own.
        cpu_layout = os.environ.get("TUNEWIZ_LAYOUT") != "rows"  # measurement switch: benchmarks/recall_checks.py
        if self.device == "cpu" and not self.quantized and not self.sharded and cpu_layout:
            # the checks decode a batch of a few dozen rows, where MKL multiplies by a column-major weight at
            # twice the speed (tunewiz/training/layout.py); before fusing, which keeps the layout.
            from tunewiz.training.layout import column_major_weights

            column_major_weights(self.model)
        self.fused = 0
        if not self.sharded and os.environ.get("TUNEWIZ_FUSE", "1") != "0":
            from tunewiz.training.fused import fuse_projections

            self.fused = fuse_projections(self.model)
        self.compiled = 0 if self.sharded else compile_layers(self.model, self.device)
        # A sharded model is called through the transformers model that FSDP's root wraps, the module that
        # generate() calls too: PEFT's wrappers call its forward() directly, past FSDP's gather hooks.
        self.forward_model = self.model.get_base_model() if self.sharded else self.model
        if self.precision in ("bf16", "fp16"):
            # PEFT keeps the LoRA weights in fp32 (the optimizer's masters) and by default casts
            # each adapter's input to fp32: a full-size copy of every activation in front of
            # each of the 7 adapted linears of a layer. Under autocast the adapter matmuls run in
            # 16 bits anyway (autocast casts the small weights), so the copies only cost time.
            for module in self.model.modules():
                if hasattr(module, "cast_input_dtype_enabled"):
                    module.cast_input_dtype_enabled = False
        self.trainable_params = [p for p in self.model.parameters() if p.requires_grad]

    def build_optimizer(self) -> None:
        """The step count, AdamW and its schedule, the fp16 scaler and the autocast of the run."""
        import torch

        hp, dist, precision = self.hp, self.dist, self.precision
        self.n = len(self.train_set.examples)
        self.batches_per_epoch = len(D.micro_batches(self.n, hp["batch_size"], dist.world, dist.rank, hp["seed"], 0))
        self.steps_per_epoch = max(1, self.batches_per_epoch // hp["grad_accum"])
        self.max_steps = hp["max_steps"] or max(1, math.ceil(hp["epochs"] * self.steps_per_epoch))
        self.optimizer, self.scheduler = build_optimizer(self.model, self.cfg, self.max_steps, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.autocast = (torch.autocast(device_type=self.device,
                                        dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
                         if precision in ("bf16", "fp16") else _null_context())

    def resume(self) -> None:
        """Continue from the newest intact checkpoint (none: from step 0), metrics cut back to it."""
        import torch

        run, dist, report = self.run, self.dist, self.report
        if dist.main:
            ckpt.remove_partial(run)
        dist.barrier()
        resumed = _load_newest_intact(run, self.model, self.optimizer, self.scheduler, self.scaler, dist, report,
                                      self.sharded)
        if resumed is not None:
            path, state = resumed
            if dist.world > 1:
                torch.manual_seed(self.hp["seed"] + 7919 * state["step"] + dist.rank)
            self.start_step = state["step"]
            self.guard.reference = state.get("loss_reference")  # absent in older checkpoints: measured again
            report.log(f"resuming from {path.name}")
        if dist.main:
            _truncate_metrics(run, self.start_step)

    def prepare_checks(self) -> None:
        """The per-checkpoint recall and drift checks, and the base model's answers (step 0)."""
        checker = _recall_checker(self.run, self.cfg, self.tokenizer, self.family)
        self.checker = checker
        if checker is None:
            return
        # Answering with the adapter merged into the weights is ~30 % faster on a CPU. Unmerging restores
        # fp32 weights to within a rounding step; 16-bit or 4-bit weights would not come back, and DDP's
        # processes must keep identical weights, so only a single fp32 process merges.
        checker.merge_lora = self.precision == "fp32" and not self.quantized and self.dist.world == 1
        checker.lockstep = self.sharded
        _restore_base_answers(self.run, checker)
        if self.start_step == 0:
            self.report.set(state="starting", message="checking what the base model answers (step 0)")
            _check_base(checker, self.model, self.cfg, self.precision, self.target, self.report, self.dist,
                        self.autocast)

    def wrap_for_processes(self) -> None:
        """DDP around the model when several processes train unsharded; the start-up line; state running."""
        dist, report = self.dist, self.report
        if dist.world > 1 and not self.sharded:
            from torch.nn.parallel import DistributedDataParallel

            # No buffer needs syncing (rotary tables are the same on every rank), and the fused projections'
            # concatenated weights are buffers: broadcast each step, they would send the model's weights again.
            self.forward_model = DistributedDataParallel(
                self.model, device_ids=[dist.local_rank] if self.device == "cuda" else None, broadcast_buffers=False)
        trainable = sum(p.numel() for p in self.trainable_params)
        report.log(f"device {self.device} x{dist.world}, precision {self.precision}, attention {self.attention}, "
                   f"threads {self.threads}, {trainable:,} trainable LoRA weights, {self.max_steps} steps "
                   f"({self.steps_per_epoch} per epoch)"
                   + (f"; {self.compiled} layers compiled (the first step takes a minute or two)"
                      if self.compiled else "")
                   + (f"; {self.fused} projection groups fused (q/k/v, gate/up)" if self.fused else ""))
        report.set(state="running", message="", step=self.start_step, max_steps=self.max_steps,
                   extra={**report.status.extra, "device": self.device, "precision": self.precision,
                          "world_size": dist.world})

    def plan_batches(self) -> None:
        # Measurement switch (benchmarks/train.py): the same loop with padded batches instead of padding-free ones.
        self.padded = os.environ.get("TUNEWIZ_BATCHING") == "padded"
        tokenizer = self.tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.by_index = keeps_logits_by_index(self.model.get_base_model())
        # On a CPU a micro-batch runs as passes of at most CPU_PASS_TOKENS tokens (consecutive samples
        # packed; a longer sample alone): memory holds the activations of one pass, not of the whole
        # micro-batch (half the peak on benchmarks/train.py), and the speed is the same as one row per
        # micro-batch or 256-token passes (benchmarks/train_cpu_choices.py; docs/train.md). Gradients
        # add up over the passes and the loss is normalized by the step's answer tokens, so the update
        # is the same.
        # Sharded, every process must run the same number of passes (each gathers layers from all).
        self.pass_tokens = CPU_PASS_TOKENS if self.device == "cpu" and not self.sharded else 0

    # -- the loop -----------------------------------------------------------------------------------
    def batches_for_step(self, step: int) -> list:
        """(micro-batch, real tokens) of optimizer step `step` (1-based), replayable after a resume."""
        hp, dist = self.hp, self.dist
        out = []
        for index in range((step - 1) * hp["grad_accum"], step * hp["grad_accum"]):
            epoch, offset = divmod(index, self.batches_per_epoch)
            indices = D.micro_batches(self.n, hp["batch_size"], dist.world, dist.rank, hp["seed"], epoch)[offset]
            if self.question_dropout:
                examples = [self.question_dropout.example(self.train_set, i, epoch) for i in indices]
            else:
                examples = [self.train_set.examples[i] for i in indices]
            groups = D.rows_within(examples, self.pass_tokens) if self.pass_tokens and not self.padded else [examples]
            for group in groups:
                real = sum(len(e.input_ids) for e in group)
                multiple = D.row_multiple(real) if self.compiled else 1  # see D.row_multiple
                batch = (D.collate_padded(group, self.pad_id) if self.padded
                         else D.collate_flat(group, multiple, self.pad_id))
                out.append((batch, real))
        return out

    def loop(self) -> str:
        import torch

        self.window_tokens, self.window_start = 0, time.perf_counter()
        status_written = 0.0
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats(self.target)
        step = self.start_step
        while step < self.max_steps:
            step += 1
            step_loss, grad_norm, lr = self.train_step(step)
            epoch = step / self.steps_per_epoch
            if step % self.hp["logging_steps"] == 0 or step == self.max_steps:
                self.log_step(step, epoch, step_loss, grad_norm, lr)
            stopping = _stop_requested(self.run, self.stop, self.dist, self.target)
            save_now = step % self.hp["save_steps"] == 0 or step == self.max_steps or stopping
            if self.val_set.examples and (step % self.hp["eval_steps"] == 0 or save_now):
                self.validate(step, epoch)
            if save_now:
                self.save_and_check(step, epoch, stopping)
            if stopping:
                self.report.set(state="stopped", step=step, ended=now_iso(),
                                message=f"stopped on request at step {step}; continue with "
                                        f"`tunewiz train --resume {self.run.id}`")
                self.report.log("stopped on request")
                return "stopped"
            if save_now or time.monotonic() - status_written >= 1.0:
                # status.json is written atomically with two fsyncs: once a second is enough for a
                # progress display, and steps of an 8B model on one GPU take about 0.1 s.
                self.report.set(step=step)
                status_written = time.monotonic()
        self.report.set(state="finished", step=step, message=f"finished {self.max_steps} steps", ended=now_iso())
        self.report.log("finished")
        return "finished"

    def train_step(self, step: int) -> tuple[float, float, float]:
        """One optimizer step over its micro-batches: (loss, gradient norm before clipping, learning rate)."""
        import torch

        dist, target, hp = self.dist, self.target, self.hp
        forward_model, scaler, optimizer = self.forward_model, self.scaler, self.optimizer
        micro = self.batches_for_step(step)
        items = dist.sum([sum(D.answer_tokens(b) for b, _ in micro)], target)[0]
        step_loss_sum = torch.zeros((), dtype=torch.float32, device=target)  # read once per step: one sync
        # Every step: the PEFT wrapper's own flag says "training" while the base layers loaded by
        # from_pretrained are still in eval mode (no gradient checkpointing, no dropout), so it cannot
        # tell when to skip this (py-spy: 4 % of an H200 run's loop; skipping it changed no figure).
        self.model.train()
        for i, (batch, real) in enumerate(micro):
            self.window_tokens += real
            batch = {k: v.to(target, non_blocking=True) for k, v in batch.items()}
            sync = i == len(micro) - 1
            if self.sharded:
                forward_model.set_requires_gradient_sync(sync)
            with (forward_model.no_sync() if dist.world > 1 and not sync and not self.sharded else _null_context()):
                with self.autocast:
                    share = answer_loss(forward_model, batch, max(items, 1), self.by_index)
                # DDP averages gradients over processes; the loss is already a share of the global
                # token count, so scale back up to get the gradient of the global mean.
                loss = share * dist.world
                (scaler.scale(loss) if scaler else loss).backward()
            step_loss_sum += share.detach().float()
        step_loss = dist.sum([step_loss_sum.item()], target)[0]
        if scaler:
            scaler.unscale_(optimizer)
        clip = hp["max_grad_norm"] or float("inf")
        grad_norm = full_grad_norm(torch.nn.utils.clip_grad_norm_(self.trainable_params, clip))
        self.refuse_broken(step, step_loss, grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.scheduler.step()
        return step_loss, grad_norm, lr

    def refuse_broken(self, step: int, step_loss: float, grad_norm: float) -> None:
        """Stop before an update with a non-finite loss or gradient, or after a divergence."""
        hp = self.hp
        if not math.isfinite(step_loss) or (self.scaler is None and not math.isfinite(grad_norm)):
            what = "loss" if not math.isfinite(step_loss) else "gradient norm"
            value = step_loss if what == "loss" else grad_norm
            raise TrainingFailed(
                f"the {what} became {value} at step {step}: training stopped. Lower "
                f"hyperparameters.learning_rate (now {hp['learning_rate']:g}), use fp32 or bf16 instead of "
                "fp16, or check the base model's weights")
        if self.guard.diverged(step_loss):
            raise TrainingFailed(self.guard.message(step_loss, step, hp["learning_rate"]))

    def log_step(self, step: int, epoch: float, step_loss: float, grad_norm: float, lr: float) -> None:
        """A train line in metrics.jsonl and the log, with the throughput since the last one."""
        elapsed = time.perf_counter() - self.window_start
        tokens = self.dist.sum([self.window_tokens], self.target)[0]
        record = {"type": "train", "step": step, "epoch": round(epoch, 4), "loss": step_loss, "tokens": int(tokens),
                  "lr": lr, "grad_norm": grad_norm,
                  "tokens_per_s": round(tokens / elapsed, 1) if elapsed > 0 else None,
                  "mem_mb": _memory_mb(self.device, self.target), "time": round(time.time(), 3)}
        self.report.metrics(record)
        self.report.log(f"step {step}/{self.max_steps} loss {step_loss:.4f} lr {record['lr']:.2e} "
                        f"grad_norm {grad_norm:.3f} {record['tokens_per_s']} tok/s")
        self.window_tokens, self.window_start = 0, time.perf_counter()

    def validate(self, step: int, epoch: float) -> None:
        self.last_val = evaluate(self.forward_model if self.sharded else self.model, self.val_set.examples,
                                 self.hp["batch_size"], self.dist, self.target, self.autocast, self.by_index,
                                 lockstep=self.sharded)
        self.report.metrics({"type": "eval", "step": step, "epoch": round(epoch, 4), "val_loss": self.last_val,
                             "time": round(time.time(), 3)})
        self.report.log(f"step {step} validation loss {self.last_val:.4f}")
        self.window_start = time.perf_counter()  # evaluation time is not training throughput

    def save_and_check(self, step: int, epoch: float, stopping: bool) -> None:
        """A checkpoint (gathered to rank 0 when sharded, written there), then its recall checks."""
        dist, report = self.dist, self.report
        if stopping:
            report.set(state="stopping", message="saving a checkpoint before stopping", step=step)
        state = {"step": step, "epoch": epoch, "val_loss": self.last_val, "max_steps": self.max_steps,
                 "world_size": dist.world, "loss_reference": self.guard.reference, "time": now_iso()}
        gathered = gather_state(self.model, self.optimizer) if self.sharded else None  # every process takes part
        if dist.main:
            ckpt.save_checkpoint(self.run, step, self.model, self.optimizer, self.scheduler, state, self.scaler,
                                 gathered)
        dist.barrier()
        report.log(f"saved checkpoint-{step}")
        if self.checker is not None:
            _check(self.checker, self.model, step, self.target, report, dist, self.autocast)
        self.window_start = time.perf_counter()


def _load_newest_intact(run: Run, model, optimizer, scheduler, scaler, dist: Dist, report, sharded: bool = False):
    """Load the newest checkpoint whose files are whole, saying which damaged ones were passed over.

    None when the run has no complete checkpoint (it starts from step 0); TrainingFailed when it
    has some and none loads."""
    intact, damaged = ckpt.intact_checkpoints(run)
    for path in reversed(intact):
        try:
            state = ckpt.load_checkpoint(path, model, optimizer, scheduler, scaler, restore_rng=dist.world == 1,
                                         sharded=sharded)
        except Exception as exc:  # a checkpoint from before checksums, damaged: torch's or safetensors' error
            damaged.append(f"{path} does not load ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        for problem in damaged:
            report.log(f"passed over a damaged checkpoint: {problem}")
        if damaged:
            report.set(message=f"{len(damaged)} damaged checkpoint(s) passed over; resuming from {path.name}")
        return path, state
    if damaged:
        raise TrainingFailed("no intact checkpoint to resume from: " + "; ".join(damaged)
                             + ". Start a new run with `tunewiz train`")
    return None


def evaluate(model, examples: list[D.Example], batch_size: int, dist: Dist, target, autocast,
             by_index: bool, lockstep: bool = False) -> float:
    """Mean loss per answer token over the validation samples (shared among processes).

    `lockstep` (a sharded model): every process runs as many passes as the busiest one, a
    process out of samples repeating its first (or the set's first) batch and not counting it."""
    import torch

    model.eval()
    total, count = 0.0, 0
    mine = examples[dist.rank::dist.world]
    starts = list(range(0, len(mine), batch_size))
    if lockstep:
        busiest = -(-len(examples) // dist.world)
        starts += [None] * (-(-busiest // batch_size) - len(starts))
    with torch.no_grad():
        for start in starts:
            group = mine[start:start + batch_size] if start is not None else (mine or examples)[:batch_size]
            batch = D.collate_flat(group)
            items = D.answer_tokens(batch)
            batch = {k: v.to(target) for k, v in batch.items()}
            with autocast:
                loss = float(answer_loss(model, batch, 1, by_index))  # the sum over the batch
            if start is not None:
                total += loss
                count += items
    total, count = dist.sum([total, count], target)
    model.train()
    return total / max(count, 1)


def _recall_checker(run: Run, cfg: RunSpec, tokenizer, family: str):
    """The per-checkpoint checks of this run, or None when it has nothing to check."""
    from tunewiz.training.recall import RecallChecker

    records = list(read_jsonl(run.dir / DATA_FILE))
    evaluation = cfg.evaluation or {}
    checker = RecallChecker(records, tokenizer, family, cfg.system_prompt,
                            int(evaluation.get("answer_tokens", 48)),
                            [r["answer"] for r in records if r["split"] == "train"])
    return None if checker.empty else checker


def _restore_base_answers(run: Run, checker) -> None:
    """On resume: the base model's everyday answers recorded at step 0."""
    for record in read_jsonl(run.metrics_path):
        if record.get("type") == "recall" and record.get("step") == 0 and "general_answers" in record:
            checker.base_general = record["general_answers"]


def _check_base(checker, model, cfg: RunSpec, precision: str, target, report: Reporter, dist: Dist,
                autocast) -> None:
    """Step 0: the base model's answers, reused from an earlier run of this project when nothing they
    depend on changed (the base model's files, precision, template, system prompt, questions)."""
    from tunewiz.training.recall import cached_base_check, store_base_check

    weights = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(cfg.base_dir).glob("*.safetensors"))
    fingerprint = checker.fingerprint(base_dir=str(Path(cfg.base_dir).resolve()), weights=weights,
                                      precision=precision, quantization=cfg.hardware.get("quantization", "none"),
                                      device=str(target).split(":")[0])
    project_dir = Path(cfg.project_dir)
    cached = cached_base_check(project_dir, fingerprint) if dist.main else None
    # Every process takes the same path (a sharded model answers on all of them): rank 0's file decides.
    reuse = dist.sum([0.0 if cached is None else 1.0], target)[0] > 0
    if not reuse:
        record = _check(checker, model, 0, target, report, dist, autocast)
        if record is not None:
            store_base_check(project_dir, fingerprint, record)
        return
    if dist.main:
        record = dict(cached, step=0, seconds=0.0, time=round(time.time(), 3), reused=True)
        checker.base_general = record.get("general_answers")
        report.metrics(record)
        report.log(f"base model recall: as an earlier run of this project found (data/base-answers.jsonl: "
                   f"same base model, template and questions); {_check_summary(record)}")
    dist.barrier()


def _check_summary(record: dict) -> str:
    parts = [f"{name} {record[name]['recalled']}/{record[name]['total']}"
             for name in ("trained", "reworded") if name in record]
    if "general" in record:
        parts.append(f"everyday prompts broken {record['general']['broken']}/{record['general']['total']}")
    return ", ".join(parts)


def _check(checker, model, step: int, target, report: Reporter, dist: Dist, autocast) -> dict | None:
    """Recall and drift of the model as it is now (rank 0; the others wait, or answer the same questions
    beside it when the model is sharded).

    Under the training's autocast: with 16-bit base weights the fp32 LoRA weights get 16-bit inputs."""
    if checker.lockstep and not dist.main:  # a sharded model: every process answers, rank 0 reports
        with autocast:
            checker.check(model, step, target)
    if dist.main:
        with autocast:
            record = checker.check(model, step, target)
        report.metrics(record)
        what = "base model" if step == 0 else f"step {step}"
        report.log(f"{what} recall: {_check_summary(record)} ({record['seconds']:.1f} s)")
    dist.barrier()
    return record if dist.main else None


def _stop_requested(run: Run, stop: dict[str, bool], dist: Dist, target) -> bool:
    """Whether any process was asked to stop (signal or STOP file); all processes agree."""
    asked = stop["requested"] or (run.dir / STOP_FILE).exists()
    return dist.sum([1.0 if asked else 0.0], target)[0] > 0


def _open_tracker(run: Run, cfg, start_step: int):
    from tunewiz.training.tracking import open_tracker

    try:
        return open_tracker(run.dir, run.id, cfg.tracking, {"hyperparameters": cfg.hyperparameters, "lora": cfg.lora,
                                                            "kind": cfg.kind, "base_model": cfg.model_name},
                            start_step)
    except TunewizError as exc:
        raise TrainingFailed(str(exc)) from None
    except Exception as exc:  # the tracker's own failure (no network, a bad key): say which
        raise TrainingFailed(f"tracking.backend = {cfg.tracking.get('backend')!r} could not start: "
                             f"{type(exc).__name__}: {exc}") from None


def _truncate_metrics(run: Run, step: int) -> None:
    """Drop metrics lines past the checkpoint a resume starts from, so steps are not logged twice."""
    from tunewiz.project import atomic_write_text

    kept = [r for r in read_jsonl(run.metrics_path) if r.get("step", 0) <= step]
    atomic_write_text(run.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))


def _memory_mb(device: str, target) -> float:
    import torch

    if device == "cuda":
        return round(torch.cuda.max_memory_allocated(target) / 2**20, 1)
    try:  # peak resident memory of this process
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _null_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0], resume="--resume" in args[1:]))

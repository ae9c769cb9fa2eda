"""The hardware step: what this machine has, what a run will need, and what to choose.

Detection reads /proc, os and `nvidia-smi` (no torch import: the CLI and the TUI stay
fast); MPS is assumed on Apple-silicon macOS. The memory estimate is deliberately
simple and explicit (weights + LoRA state + activations + logits + overhead), errs on
the high side (benchmarks/memory.py compares it with real peaks; docs/train.md has
the figures), and is compared with free GPU memory or available RAM before a run starts.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tunewiz.errors import TunewizError

GIB = 1024**3


NF4_BYTES = 0.557
"""Bytes per weight of a bitsandbytes NF4 layer with double quantization (4.127 bits), plus the fp32 block
scales the engine keeps for its fused q/k/v and gate/up (0.5 bit a weight, on about 65 % of a Llama-shaped
model's linear weights: tunewiz/training/fused.py): 4.45 bits."""

CPU_PASS_TOKENS = 512
"""Most tokens of one forward pass on a CPU: a micro-batch runs as rows of at most this many
tokens (`training.data.rows_within`), so memory holds one row's activations. The engine runs
that way and the memory estimate below counts it."""


@dataclass
class GPU:
    index: int
    name: str
    total_mb: int
    free_mb: int
    compute_capability: float

    @property
    def bf16(self) -> bool:
        return self.compute_capability >= 8.0


@dataclass
class Hardware:
    cpu_cores: int
    ram_total_mb: int
    ram_available_mb: int
    gpus: list[GPU] = field(default_factory=list)
    mps: bool = False
    cpu_bf16: bool = False
    """The CPU computes in bf16 natively (AVX512-BF16 or AMX): bf16 training runs at least as fast as fp32."""


def detect() -> Hardware:
    meminfo = _meminfo()
    return Hardware(cpu_cores=_cpu_cores(), ram_total_mb=meminfo.get("MemTotal", 0) // 2**20,
                    ram_available_mb=meminfo.get("MemAvailable", meminfo.get("MemFree", 0)) // 2**20,
                    gpus=_nvidia_gpus(), mps=platform.system() == "Darwin" and platform.machine() == "arm64",
                    cpu_bf16=_cpu_bf16())


def _cpu_bf16() -> bool:
    """From /proc/cpuinfo's flags (Linux x86); elsewhere False."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return _sysctl_memory()
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    return values


def _sysctl_memory() -> dict[str, int]:
    try:
        total = int(subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True, text=True,
                                   timeout=5).stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}
    return {"MemTotal": total, "MemAvailable": total // 2}


def _nvidia_gpus() -> list[GPU]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free,compute_cap",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            gpus.append(GPU(int(parts[0]), parts[1], int(parts[2]), int(parts[3]), float(parts[4])))
        except (IndexError, ValueError):
            continue
    return gpus


# ---------------------------------------------------------------- the estimate

@dataclass
class ModelShape:
    params: int
    hidden: int
    layers: int
    intermediate: int
    vocab: int


@dataclass
class Estimate:
    weights_mb: float
    lora_mb: float
    activations_mb: float
    logits_mb: float
    overhead_mb: float

    @property
    def total_mb(self) -> float:
        return self.weights_mb + self.lora_mb + self.activations_mb + self.logits_mb + self.overhead_mb

    def lines(self) -> list[str]:
        return [f"  base weights   {self.weights_mb:10,.0f} MB",
                f"  LoRA + Adam    {self.lora_mb:10,.0f} MB",
                f"  activations    {self.activations_mb:10,.0f} MB",
                f"  logits         {self.logits_mb:10,.0f} MB",
                f"  overhead       {self.overhead_mb:10,.0f} MB",
                f"  total          {self.total_mb:10,.0f} MB"]


BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
TOKEN_SCALE = {"cpu": 1.2, "cuda": 0.75}
"""Measured correction of the token-proportional terms per device (benchmarks/memory.py):
against what the measured peaks leave for them, the count is 0.96-1.06x on a CPU (fp32,
peak RSS, SmolLM2-135M) and 1.6-3.0x on CUDA (bf16, max allocated, Llama-3-8B shape,
eager). Peak RSS varies by up to 8 % between runs of the same case, hence the CPU's 1.2.
Scaled, the whole estimate lands above every measured peak (docs/train.md). Devices not
measured (MPS) keep the count as it is."""


def estimate_memory(shape: ModelShape, *, precision: str, batch_size: int, seq_len: int, lora_r: int,
                    lora_dropout: float, gradient_checkpointing: bool, device: str,
                    quantization: str = "none", shards: int = 1) -> Estimate:
    """Peak memory of LoRA training of one process, in MB (on the high side).

    Tokens held at once: on a GPU the whole micro-batch, as if every sample were
    max_seq_len long; on a CPU one pass (the engine runs a micro-batch as passes of at
    most CPU_PASS_TOKENS tokens, a longer sample alone). Per token and layer a Llama-style
    block keeps about 18 hidden-sized and 4 intermediate-sized tensors for the backward
    pass, and LoRA dropout above 0 a dropped-out copy of each LoRA projection's input with
    its mask (6 hidden-sized, 1 intermediate-sized); with gradient checkpointing only the
    layer inputs are kept, plus one layer recomputed at a time and its gradients (counted
    as two layers). Logits, per token and vocabulary entry: the model's output and its
    gradient (2 x width), their fp32 copy, the log-softmax and three fp32 gradients or
    temporaries of the loss (20 bytes). These counts are then scaled by TOKEN_SCALE.

    With quantization = nf4 (QLoRA) the linear layers' weights take NF4_BYTES a weight (4 bits,
    the double-quantized block scales, and the fused projections' fp32 scales); the embeddings stay at
    the compute width.

    With the model sharded over `shards` processes (FSDP) each keeps 1/shards of the base and LoRA
    weights and optimizer state, plus two decoder layers gathered whole (the one running and the
    next, prefetched).
    """
    width = BYTES[precision]
    tokens = batch_size * seq_len
    if device == "cpu":
        tokens = min(tokens, max(CPU_PASS_TOKENS, seq_len))
    weights = shape.params * width
    if quantization == "nf4":
        embeddings = shape.vocab * shape.hidden
        weights = (shape.params - embeddings) * NF4_BYTES + embeddings * width
    # all-linear LoRA: r x (in + out) per projection, ~7 projections of ~hidden+intermediate per layer;
    # fp32 weights, gradients and two Adam moments.
    lora_params = shape.layers * 7 * lora_r * (shape.hidden + shape.intermediate)
    lora = lora_params * 16
    if shards > 1:
        layer_weights = (shape.params - shape.vocab * shape.hidden) / max(shape.layers, 1) * width
        weights = weights / shards + 2 * layer_weights
        lora = lora / shards
    per_layer_token = (18 * shape.hidden + 4 * shape.intermediate) * width
    if lora_dropout > 0:
        per_layer_token += (6 * shape.hidden + shape.intermediate) * (width + 1)
    if gradient_checkpointing:
        activations = tokens * (shape.layers * shape.hidden * width + 2 * per_layer_token)
    else:
        activations = tokens * shape.layers * per_layer_token
    logits = tokens * shape.vocab * (20 + 2 * width)
    scale = TOKEN_SCALE.get(device, 1.0)
    activations, logits = activations * scale, logits * scale
    overhead = (600 if device == "cuda" else 500) * 2**20 + 0.05 * weights
    mb = 2**20
    return Estimate(weights / mb, lora / mb, activations / mb, logits / mb, overhead / mb)


def model_shape(spec: str, gguf_file: str = "", relative_to: Path | None = None) -> ModelShape | None:
    """Sizes of a base model from its files' headers (config.json, safetensors, GGUF metadata)."""
    from tunewiz.basemodel import (READY_MARKER, _as_path, converted_path, count_parameters, is_hf_folder,
                                   locate_gguf, read_config)

    params = count_parameters(spec, gguf_file, relative_to)
    if params is None:
        return None
    gguf = locate_gguf(spec, gguf_file, relative_to)
    folder = None
    if gguf is not None:
        converted = converted_path(gguf)
        folder = converted if (converted / READY_MARKER).exists() else None
        if folder is None:
            return _gguf_shape(gguf, params)
    else:
        path = _as_path(spec, relative_to)
        folder = path if is_hf_folder(path) else None
    if folder is None:
        return None
    config = read_config(folder)
    config = config.get("text_config", config)
    hidden = config.get("hidden_size", 4096)
    return ModelShape(params=params, hidden=hidden, layers=config.get("num_hidden_layers", 32),
                      intermediate=config.get("intermediate_size", 4 * hidden),
                      vocab=config.get("vocab_size", 32000))


def _gguf_shape(gguf: Path, params: int) -> ModelShape:
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))

    def field_int(suffix: str, default: int) -> int:
        for name, value in reader.fields.items():
            if name.endswith(suffix):
                try:
                    return int(value.parts[value.data[0]][0])
                except (IndexError, TypeError, ValueError):
                    return default
        return default

    hidden = field_int(".embedding_length", 4096)
    vocab = next((int(t.shape[-1]) if int(t.shape[0]) == hidden else int(t.shape[0])
                  for t in reader.tensors if t.name == "token_embd.weight"), 32000)
    return ModelShape(params=params, hidden=hidden, layers=field_int(".block_count", 32),
                      intermediate=field_int(".feed_forward_length", 4 * hidden), vocab=vocab)


def _estimate_for(cfg, shape: ModelShape, precision: str, batch_size: int, device: str,
                  quantization: str | None = None, shards: int = 1,
                  hyperparameters: Mapping[str, Any] | None = None) -> Estimate:
    """The estimate for a project's settings at a given precision, batch size and device; `hyperparameters`
    (the values a run trains with) override the project's LoRA rank, dropout and checkpointing."""
    hp = dict(dataclasses.asdict(cfg.hyperparameters), **(hyperparameters or {}))
    return estimate_memory(shape, precision=precision, batch_size=batch_size, seq_len=cfg.template.max_seq_len,
                           lora_r=hp["lora_r"], lora_dropout=hp["lora_dropout"],
                           gradient_checkpointing=hp["gradient_checkpointing"], device=device,
                           quantization=cfg.hardware.quantization if quantization is None else quantization,
                           shards=shards)


def check_quantization(project, device: str) -> None:
    """Refuse, before anything starts, a 4-bit base that cannot work here."""
    if project.config.hardware.quantization != "nf4":
        return
    if device != "cuda" and project.config.hardware.device != "cpu":
        raise TunewizError(
            "hardware.quantization = nf4 (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels make a big "
            f"model fit a GPU, and this run would train on {device}. Set hardware.quantization = none, or "
            "hardware.device = cpu to run bitsandbytes' CPU backend anyway (slow: for checks)")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise TunewizError("hardware.quantization = nf4 needs bitsandbytes: pip install 'tunewiz[qlora]' "
                           "(or pip install bitsandbytes)")


def check_sharding(project, processes: int) -> None:
    """Refuse, before anything starts, FSDP that cannot work: one process, or a 4-bit base."""
    hardware = project.config.hardware
    if hardware.sharding != "fsdp":
        return
    if processes < 2:
        raise TunewizError("hardware.sharding = fsdp splits the model over several processes, and this run has "
                           "one: set hardware.gpus (or --gpus) to 2 or more, or train on several machines "
                           "(--nnodes); on one GPU set hardware.sharding = none")
    if hardware.quantization == "nf4":
        raise TunewizError("hardware.sharding = fsdp and hardware.quantization = nf4 do not go together here "
                           "(bitsandbytes' 4-bit weights are not split by FSDP): use one of them")


# ---------------------------------------------------------------- the recommendation

@dataclass
class Recommendation:
    device: str
    precision: str
    max_batch_size: int
    """The largest batch that fits (a CPU: at most 8, bigger ones only make each step slower); 0: unknown
    (the model is not downloaded yet)."""
    threads: int
    available_mb: float
    estimate: Estimate | None
    notes: list[str]
    quantization: str = "none"
    """'nf4' when the model fits one GPU only with a 4-bit base (QLoRA); applied only by --apply."""
    sharding: str = "none"
    gpus: int = 1
    """'fsdp' over `gpus` GPUs when the model fits no single GPU, even with QLoRA; applied only by --apply."""
    planned_batch_size: int = 0
    """The batch the next run trains with (the plan's under `preset = auto`, else the project's)."""

    @property
    def batch_size(self) -> int:
        """The batch to train with: the planned one, lowered to the largest that fits. The plan
        (tunewiz.recommend) owns the batch size; the hardware only caps it."""
        if not self.max_batch_size:
            return self.planned_batch_size
        return min(self.planned_batch_size, self.max_batch_size) if self.planned_batch_size else self.max_batch_size

    @property
    def lowers_batch(self) -> bool:
        """The planned batch does not fit: --apply writes the smaller one."""
        return self.batch_size < self.planned_batch_size


def _cpu_bf16_fit(cfg, shape: ModelShape, available: float, fp32: Estimate, hw: Hardware,
                  hyperparameters: Mapping[str, Any] | None):
    """A big base on a CPU: (batch size, estimate, note) in bf16 weights when fp32 does not fit, else None."""
    for candidate in (8, 4, 2, 1):
        est = _estimate_for(cfg, shape, "bf16", candidate, "cpu", hyperparameters=hyperparameters)
        if est.total_mb <= 0.9 * available:
            speed = ("this CPU computes in bf16 natively (AVX512-BF16/AMX)" if hw.cpu_bf16 else
                     "this CPU has no native bf16, so each step is slower than fp32 would be, but it fits")
            return candidate, est, (f"the model does not fit in fp32 ({fp32.total_mb:,.0f} MB at batch size 1); with "
                                    f"bf16 weights it needs {est.total_mb:,.0f} MB at batch size {candidate}; {speed}: "
                                    "set hardware.precision = bf16 (`tunewiz hardware --apply`)")
    return None


def _cpu_nf4_note(cfg, shape: ModelShape, available: float, hyperparameters: Mapping[str, Any] | None) -> str:
    """What a 4-bit base would need on this CPU: said, not proposed. bitsandbytes' CPU backend trains, but
    far too slowly to use (SmolLM2-135M on 2 cores learned the facts as fp32 does, but at 23-28 s a step,
    17-20x fp32's time: 52 minutes instead of 4; docs/train.md)."""
    est = _estimate_for(cfg, shape, "bf16", 1, "cpu", quantization="nf4", hyperparameters=hyperparameters)
    if est.total_mb > 0.9 * available:
        return ""
    return (f" (a 4-bit base, hardware.quantization = nf4 with hardware.device = cpu, would need "
            f"{est.total_mb:,.0f} MB, but bitsandbytes' CPU backend trains far too slowly to use: docs/train.md)")


def _fsdp_fit(cfg, shape: ModelShape, precision: str, hw: Hardware, one_gpu: Estimate,
              hyperparameters: Mapping[str, Any] | None, planned: int):
    """A model too big for one GPU even in 4 bits, sharded over all of them: (batch size, estimate, note)."""
    if len(hw.gpus) < 2:
        return None
    available = min(g.free_mb for g in hw.gpus)
    for candidate in _batch_candidates(16, planned):
        est = _estimate_for(cfg, shape, precision, candidate, "cuda", quantization="none", shards=len(hw.gpus),
                            hyperparameters=hyperparameters)
        if est.total_mb <= 0.9 * available:
            return candidate, est, (
                f"the model does not fit one GPU, even with QLoRA ({one_gpu.total_mb:,.0f} MB in 16 bits at "
                f"batch size 1); sharded over the {len(hw.gpus)} GPUs (FSDP) each needs {est.total_mb:,.0f} MB at "
                f"batch size {candidate}: set hardware.sharding = fsdp and hardware.gpus = {len(hw.gpus)} "
                "(`tunewiz hardware --apply`)")
    return None


def recommend(project, hw: Hardware | None = None,
              hyperparameters: Mapping[str, Any] | None = None) -> Recommendation:
    """Device, precision, batch size and threads for this project's model on this machine;
    `hyperparameters`: the values the next run trains with (its batch size and LoRA rank; default
    the project's)."""
    hw = hw or detect()
    planned = int((hyperparameters or {}).get("batch_size", project.config.hyperparameters.batch_size))
    rec = _fit(project, hw, hyperparameters, planned)
    rec.planned_batch_size = planned
    return rec


def _batch_candidates(largest: int, planned: int) -> list[int]:
    """Batch sizes to try, largest first: powers of two up to `largest`, and the planned one (a planned
    batch above `largest` that fits is no reason to say it does not)."""
    return sorted({2 ** k for k in range(largest.bit_length()) if 2 ** k <= largest} | {max(1, planned)},
                  reverse=True)


def _fit(project, hw: Hardware, hyperparameters: Mapping[str, Any] | None, planned: int) -> Recommendation:
    """The recommendation with the largest batch that fits (recommend adds the planned one)."""
    cfg = project.config
    shape = model_shape(cfg.base_model.model, cfg.base_model.gguf_file, project.root)
    notes = []
    if hw.gpus:
        gpu = max(hw.gpus, key=lambda g: g.free_mb)
        device, precision, available = "cuda", "bf16" if gpu.bf16 else "fp16", gpu.free_mb
        notes.append(f"{len(hw.gpus)} NVIDIA GPU(s); the one with most free memory: {gpu.name}, "
                     f"{gpu.free_mb:,} MB free")
    elif hw.mps:
        device, precision, available = "mps", "fp32", hw.ram_available_mb * 0.7
        notes.append("Apple silicon GPU (MPS); its memory is shared with the CPU")
    else:
        device, precision, available = "cpu", "fp32", hw.ram_available_mb
        notes.append("no GPU found: training on the CPU, fine for small models (<= 1B) and few pairs")
    threads = hw.cpu_cores
    batch, best = 1, None
    if shape is not None:
        for candidate in _batch_candidates(64, planned):
            est = _estimate_for(cfg, shape, precision, candidate, device, hyperparameters=hyperparameters)
            if est.total_mb <= 0.9 * available or candidate == 1:
                batch, best = candidate, est
                break
        if device == "cpu":
            # Bigger CPU batches only make each step slower, not training faster: not proposed, but a
            # planned one that fits stays.
            batch = min(batch, max(8, planned))
        if best is not None and best.total_mb > 0.9 * available and device == "cuda":
            # In order: 16-bit LoRA on one GPU (above), then QLoRA on one GPU, then several GPUs.
            for candidate in _batch_candidates(16, planned):
                est = _estimate_for(cfg, shape, precision, candidate, device, quantization="nf4",
                                    hyperparameters=hyperparameters)
                if est.total_mb <= 0.9 * available:
                    notes.append(f"the model does not fit one GPU in 16 bits ({best.total_mb:,.0f} MB at batch "
                                 f"size 1); with QLoRA (a 4-bit NF4 base) it needs {est.total_mb:,.0f} MB at batch "
                                 f"size {candidate}: set hardware.quantization = nf4 (`tunewiz hardware --apply`)")
                    return Recommendation(device, precision, candidate, threads, available, est, notes, "nf4")
            sharded = _fsdp_fit(cfg, shape, precision, hw, best, hyperparameters, planned)
            if sharded is not None:
                candidate, est, note = sharded
                notes.append(note)
                return Recommendation(device, precision, candidate, threads, available, est, notes,
                                      sharding="fsdp", gpus=len(hw.gpus))
            notes.append("it does not fit one GPU even with QLoRA" + (
                f", nor sharded over the {len(hw.gpus)} GPUs (FSDP)" if len(hw.gpus) > 1 else
                "; several GPUs could hold it sharded (hardware.sharding = fsdp)") + ": a smaller model, "
                "shorter samples (template.max_seq_len) or gradient checkpointing")
        elif best is not None and best.total_mb > 0.9 * available and device == "cpu":
            fitted = _cpu_bf16_fit(cfg, shape, available, best, hw, hyperparameters)
            if fitted is not None:
                candidate, est, note = fitted
                notes.append(note)
                return Recommendation(device, "bf16", candidate, threads, available, est, notes)
            notes.append("even batch size 1 does not fit, in fp32 or bf16: shorten template.max_seq_len, turn on "
                         "gradient checkpointing, or use a smaller model"
                         + _cpu_nf4_note(cfg, shape, available, hyperparameters))
        elif best is not None and best.total_mb > 0.9 * available:
            notes.append("even batch size 1 does not fit: shorten template.max_seq_len, turn on "
                         "gradient checkpointing, or use a smaller model")
    else:
        notes.append("the model's size is unknown until it is downloaded: what fits is not known yet")
        batch = 0
    return Recommendation(device, precision, batch, threads, available, best, notes)


def check_fits(project, *, gpus: int = 1, allow: bool = False, hw: Hardware | None = None,
               hyperparameters: Mapping[str, Any] | None = None) -> Estimate | None:
    """Refuse to start a run that the estimate says will not fit (unless allowed); the estimate.

    `hyperparameters`: the values the run trains with (a new run's plan, which under `preset = auto`
    may choose another batch size or LoRA rank than the project's; a resumed run's run.json)."""
    hw = hw or detect()
    cfg = project.config
    device = cfg.hardware.device
    if device == "auto":
        device = "cuda" if hw.gpus else ("mps" if hw.mps else "cpu")
    check_quantization(project, device)
    shape = model_shape(cfg.base_model.model, cfg.base_model.gguf_file, project.root)
    if shape is None:
        return None
    if device == "cuda" and gpus > len(hw.gpus) and hw.gpus:
        raise TunewizError(f"hardware.gpus is {gpus} but this machine has {len(hw.gpus)} NVIDIA GPU(s)")
    precision = cfg.hardware.precision
    if precision == "auto":
        precision = ("bf16" if all(g.bf16 for g in hw.gpus) else "fp16") if device == "cuda" and hw.gpus else "fp32"
    shards = gpus if cfg.hardware.sharding == "fsdp" and gpus > 1 else 1
    batch_size = int((hyperparameters or {}).get("batch_size", cfg.hyperparameters.batch_size))
    est = _estimate_for(cfg, shape, precision, batch_size, device, shards=shards, hyperparameters=hyperparameters)
    if device == "cuda" and hw.gpus:
        available, where = min(g.free_mb for g in hw.gpus[:gpus]), "free GPU memory"
    else:
        processes = gpus if device == "cpu" else 1
        est_total = est.total_mb * processes
        available, where = hw.ram_available_mb, "available RAM"
        if est_total > available and not allow:
            raise _refusal(est, est_total, available, where, processes)
        return est
    if est.total_mb > available and not allow:
        raise _refusal(est, est.total_mb, available, where, 1)
    return est


def _refusal(est: Estimate, need: float, available: float, where: str, processes: int) -> TunewizError:
    each = f" for each of {processes} processes" if processes > 1 else ""
    return TunewizError(
        f"this run will not fit: it needs about {need:,.0f} MB{each} but only {available:,.0f} MB of "
        f"{where} is there.\n" + "\n".join(est.lines()) +
        "\nLower hyperparameters.batch_size or template.max_seq_len, turn on "
        "hyperparameters.gradient_checkpointing, or pick a smaller model. To start anyway: "
        "`tunewiz train --allow-over-memory` (or hardware.allow_over_memory = true).")


def hardware_report(project, hw: Hardware | None = None,
                    hyperparameters: Mapping[str, Any] | None = None) -> tuple[list[str], Recommendation]:
    """What `tunewiz hardware` and the Hardware step show: the machine, the recommendation and the
    memory estimate, as lines; and the recommendation (for --apply). The estimate is for `hyperparameters`
    (the values the next run would train with: training.launch.hardware_report_for_next_run) or, without
    them, for the project's own settings."""
    hw = hw or detect()
    lines = [f"CPU cores: {hw.cpu_cores}{' (bf16)' if hw.cpu_bf16 else ''}   RAM: {hw.ram_total_mb:,} MB "
             f"({hw.ram_available_mb:,} MB available)"]
    lines += [f"GPU {g.index}: {g.name}, {g.free_mb:,} of {g.total_mb:,} MB free, compute capability "
              f"{g.compute_capability:g}{' (bf16)' if g.bf16 else ''}" for g in hw.gpus]
    if hw.mps:
        lines.append("Apple silicon GPU (MPS)")
    if not hw.gpus and not hw.mps:
        lines.append("No GPU found.")
    rec = recommend(project, hw, hyperparameters)
    if rec.lowers_batch:
        batch = f"batch size {rec.batch_size} (the planned {rec.planned_batch_size} does not fit)"
    else:
        batch = f"batch size {rec.batch_size}" + (f" (up to {rec.max_batch_size} fits)" if rec.max_batch_size else "")
    lines.append(f"Recommended: device {rec.device}, precision {rec.precision}, {batch}, "
                 f"threads {rec.threads}" + (", QLoRA (hardware.quantization = nf4)" if rec.quantization == "nf4"
                                            else "")
                 + (f", FSDP over {rec.gpus} GPUs (hardware.sharding = fsdp)" if rec.sharding == "fsdp" else ""))
    lines += [f"  - {note}" for note in rec.notes]
    cfg = project.config
    if hyperparameters is None:
        lines.append(f"Estimate for the project's settings (batch {cfg.hyperparameters.batch_size}, "
                     f"max_seq_len {cfg.template.max_seq_len}):")
    else:
        lines.append(f"Estimate for the next run (batch {hyperparameters['batch_size']}, LoRA rank "
                     f"{hyperparameters['lora_r']}, max_seq_len {cfg.template.max_seq_len}):")
    try:
        est = check_fits(project, gpus=cfg.hardware.gpus, allow=False, hw=hw, hyperparameters=hyperparameters)
    except TunewizError as exc:  # a refusal is the warning to show
        lines.append(f"  WARNING: {exc}")
    else:
        if est is not None:
            lines += est.lines() + [f"  available      {rec.available_mb:10,.0f} MB"]
        else:
            lines.append("  unknown until the base model is downloaded")
    return lines, rec


def apply_recommendation(project, rec: Recommendation) -> list[str]:
    """Write the recommended device, precision, quantization, sharding and threads into the project, and
    the batch size only when the planned one does not fit (the plan owns it: a value written here would
    stop `preset = auto` from choosing it). The keys written."""
    project.set("hardware.device", rec.device)
    project.set("hardware.precision", rec.precision)
    project.set("hardware.quantization", rec.quantization)
    project.set("hardware.sharding", rec.sharding)
    if rec.sharding == "fsdp":
        project.set("hardware.gpus", rec.gpus)
    project.set("hardware.threads", rec.threads if rec.device == "cpu" else 0)
    written = ["hardware.device", "hardware.precision", "hardware.quantization", "hardware.sharding",
               *(["hardware.gpus"] if rec.sharding == "fsdp" else []), "hardware.threads"]
    if rec.lowers_batch:
        project.set("hyperparameters.batch_size", rec.batch_size)
        written.append("hyperparameters.batch_size")
    project.save()
    return written

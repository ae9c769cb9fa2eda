"""FSDP on the CPU: the tiny model sharded over two processes (torchrun, gloo).

A sharded run must train like an unsharded one (the same losses as DDP over the same two
processes), run its checks and validation on every process in lockstep, write the same whole
checkpoints as any run, survive kill -9, resume, and export from its checkpoint.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tunewiz.errors import TunewizError
from tunewiz.hardware import GPU, Hardware, ModelShape, apply_recommendation, estimate_memory, recommend
from tunewiz.training.launch import start_run, wait_for_end

LLAMA_70B = ModelShape(params=70_553_706_496, hidden=8192, layers=80, intermediate=28672, vocab=128256)
EIGHT_A100 = Hardware(cpu_cores=64, ram_total_mb=1_000_000, ram_available_mb=900_000,
                      gpus=[GPU(i, "NVIDIA A100-SXM4-40GB", 40_960, 40_000, 8.0) for i in range(8)])
"""A stand-in for a machine of eight 40 GB GPUs: no GPU can be had here."""


def wait_until(predicate, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def losses(run) -> list[float]:
    return [m["loss"] for m in run.metrics() if m["type"] == "train"]


@pytest.mark.slow
def test_sharded_training_matches_ddp(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 8)
    tiny_project.set("hyperparameters.save_steps", 8)
    tiny_project.set("hyperparameters.lora_dropout", 0.0)  # no random masks: the two runs see the same numbers
    ddp = start_run(tiny_project, gpus=2)
    assert wait_for_end(ddp, 240) == "finished", ddp.log_path.read_text()
    tiny_project.set("hardware.sharding", "fsdp")
    fsdp = start_run(tiny_project, gpus=2)
    assert wait_for_end(fsdp, 240) == "finished", fsdp.log_path.read_text()
    assert "FSDP: 2 layers sharded over 2 processes" in fsdp.log_path.read_text()
    # Gradients summed in another order (reduce-scatter, not all-reduce) differ in the last bits, which
    # Adam's first steps on random weights magnify to ~2e-4; a process training on its own gradients or
    # on other samples would be off by more.
    assert losses(fsdp) == pytest.approx(losses(ddp), rel=1e-3)
    assert len(losses(fsdp)) == 8 and losses(fsdp)[-1] < losses(fsdp)[0]
    evals = [m["val_loss"] for run in (ddp, fsdp) for m in run.metrics() if m["type"] == "eval"]
    assert evals[len(evals) // 2:] == pytest.approx(evals[:len(evals) // 2], rel=1e-3)  # lockstep validation
    checks = [[m["trained"] for m in run.metrics() if m["type"] == "recall"] for run in (ddp, fsdp)]
    assert checks[0] == checks[1] and len(checks[1]) == 2  # step 0 and step 8, answered on both processes


@pytest.mark.slow
def test_a_sharded_run_survives_kill_9_resumes_and_exports(tiny_project):
    from safetensors.torch import load_file

    from tunewiz.export import export_model

    tiny_project.set("hardware.sharding", "fsdp")
    tiny_project.set("hyperparameters.max_steps", 40)
    run = start_run(tiny_project, gpus=2)
    wait_until(lambda: len(run.complete_checkpoints()) >= 2)
    os.killpg(run.read_status().pid, signal.SIGKILL)  # the machine went down: torchrun and both processes
    wait_until(lambda: run.state() == "died", timeout=20)
    last = int(run.complete_checkpoints()[-1].name.split("-")[1])

    # The checkpoint is whole: an unsharded model's files (the adapter, a plain optimizer state).
    import torch

    checkpoint = run.complete_checkpoints()[-1]
    adapter = load_file(str(checkpoint / "adapter_model.safetensors"))
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=False)
    assert adapter and all(".lora_" in key and ".default" not in key for key in adapter)
    assert sorted(optimizer["state"]) == list(range(len(adapter)))
    assert (sorted(tuple(state["exp_avg"].shape) for state in optimizer["state"].values())
            == sorted(tuple(weight.shape) for weight in adapter.values()))  # whole, not a shard's

    start_run(tiny_project, resume=run.id, gpus=2)
    assert wait_for_end(run, 240) == "finished", run.log_path.read_text()
    steps = [m["step"] for m in run.metrics() if m["type"] == "train"]
    assert steps == list(range(1, 41))
    assert f"resuming from checkpoint-{last}" in run.log_path.read_text()

    result = export_model(tiny_project, types=["q8_0"], smoke=False)
    assert any(path.suffix == ".gguf" for path in result.folder.iterdir())


def test_sharding_is_refused_before_anything_starts(tiny_project):
    tiny_project.set("hardware.sharding", "fsdp")
    with pytest.raises(TunewizError, match="hardware.sharding = fsdp.*one: set hardware.gpus"):
        start_run(tiny_project, gpus=1)
    tiny_project.set("hardware.quantization", "nf4")
    tiny_project.set("hardware.device", "cpu")
    with pytest.raises(TunewizError, match="fsdp and hardware.quantization = nf4"):
        start_run(tiny_project, gpus=2)
    assert not tiny_project.runs_dir.exists()


def test_the_estimate_counts_a_share_of_the_weights_and_two_whole_layers():
    common = dict(precision="bf16", batch_size=1, seq_len=512, lora_r=16, lora_dropout=0.0,
                  gradient_checkpointing=True, device="cuda")
    whole = estimate_memory(LLAMA_70B, **common)
    sharded = estimate_memory(LLAMA_70B, shards=8, **common)
    layer_mb = (LLAMA_70B.params - LLAMA_70B.vocab * LLAMA_70B.hidden) / LLAMA_70B.layers * 2 / 2**20
    assert sharded.weights_mb == pytest.approx(whole.weights_mb / 8 + 2 * layer_mb)
    assert sharded.lora_mb == pytest.approx(whole.lora_mb / 8)
    assert sharded.activations_mb == whole.activations_mb  # each process still runs its own micro-batch


def test_the_recommendation_proposes_fsdp_only_after_qlora(project, monkeypatch):
    import tunewiz.hardware as hardware

    monkeypatch.setattr(hardware, "model_shape", lambda *args, **kwargs: LLAMA_70B)  # a 70B base, not downloaded
    project.set("hyperparameters.gradient_checkpointing", True)
    rec = recommend(project, EIGHT_A100)  # 4 bits need ~46 GB: no single 40 GB GPU holds it
    assert (rec.sharding, rec.gpus, rec.quantization) == ("fsdp", 8, "none")
    assert rec.estimate.total_mb < 0.9 * 40_000
    assert any("even with QLoRA" in note and "hardware.sharding = fsdp and hardware.gpus = 8" in note
               for note in rec.notes)
    assert project.config.hardware.sharding == "none"  # proposed, never switched silently
    apply_recommendation(project, rec)
    assert (project.config.hardware.sharding, project.config.hardware.gpus) == ("fsdp", 8)

    two = Hardware(cpu_cores=64, ram_total_mb=1_000_000, ram_available_mb=900_000, gpus=EIGHT_A100.gpus[:2])
    rec = recommend(project, two)  # 70 GB a GPU even sharded: nothing fits, and it says so
    assert rec.sharding == "none" and any("nor sharded over the 2 GPUs" in note for note in rec.notes)


@pytest.mark.slow
def test_a_sharded_bf16_run_keeps_fp32_adapter_weights(tiny_project):
    """16-bit base weights beside fp32 LoRA weights in one sharded layer: gathered in bf16, kept in fp32."""
    from safetensors.torch import load_file

    for key, value in {"hardware.sharding": "fsdp", "hardware.precision": "bf16", "hardware.device": "cpu",
                       "hyperparameters.max_steps": 10}.items():
        tiny_project.set(key, value)
    run = start_run(tiny_project, gpus=2)
    assert wait_for_end(run, 240) == "finished", run.log_path.read_text()
    assert "precision bf16" in run.log_path.read_text()
    assert losses(run)[-1] < losses(run)[0]
    adapter = load_file(str(run.complete_checkpoints()[-1] / "adapter_model.safetensors"))
    assert {str(weight.dtype) for weight in adapter.values()} == {"torch.float32"}

"""QLoRA (a 4-bit NF4 base, bitsandbytes) as far as a CPU checks it: the refusals, the estimate, the
recommendation, and a real run through bitsandbytes' CPU backend on the tiny model."""

from __future__ import annotations

import pytest

from tunewiz.errors import TunewizError
from tunewiz.hardware import GPU, Hardware, ModelShape, check_fits, estimate_memory, recommend
from tunewiz.training.launch import start_run, wait_for_end

LLAMA_13B = ModelShape(params=13_015_864_320, hidden=5120, layers=40, intermediate=13824, vocab=32000)
RTX_4090 = Hardware(cpu_cores=16, ram_total_mb=64_000, ram_available_mb=60_000,
                    gpus=[GPU(0, "NVIDIA GeForce RTX 4090", 24_564, 24_000, 8.9)])
"""A stand-in for a GPU machine: no GPU can be had here."""


def test_the_estimate_counts_4_bit_weights():
    common = dict(precision="bf16", batch_size=1, seq_len=512, lora_r=16, lora_dropout=0.0,
                  gradient_checkpointing=True, device="cuda")
    bf16 = estimate_memory(LLAMA_13B, **common)
    nf4 = estimate_memory(LLAMA_13B, quantization="nf4", **common)
    assert bf16.weights_mb > 24_000 > nf4.weights_mb
    assert 0.25 < nf4.weights_mb / bf16.weights_mb < 0.3  # 4.45 bits a weight, embeddings in 16 bits


def test_the_recommendation_proposes_qlora_when_16_bits_do_not_fit(project, monkeypatch):
    import tunewiz.hardware as hardware

    monkeypatch.setattr(hardware, "model_shape", lambda *args, **kwargs: LLAMA_13B)  # a 13B base, not downloaded
    project.set("hyperparameters.gradient_checkpointing", True)
    rec = recommend(project, RTX_4090)
    assert rec.quantization == "nf4" and rec.estimate.total_mb < 0.9 * 24_000
    assert any("with QLoRA" in note and "hardware.quantization = nf4" in note for note in rec.notes)
    assert project.config.hardware.quantization == "none"  # proposed, never switched silently


def test_nf4_without_a_gpu_is_refused_before_anything_starts(tiny_project):
    tiny_project.set("hardware.quantization", "nf4")
    tiny_project.set("hardware.device", "auto")
    with pytest.raises(TunewizError, match="needs a CUDA GPU.*hardware.device = cpu"):
        start_run(tiny_project)
    assert not tiny_project.runs_dir.exists() or not any(p.is_dir() for p in tiny_project.runs_dir.iterdir())


def test_nf4_without_bitsandbytes_is_refused(tiny_project, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    tiny_project.set("hardware.quantization", "nf4")
    tiny_project.set("hardware.device", "cpu")
    with pytest.raises(TunewizError, match="needs bitsandbytes: pip install 'tunewiz\\[qlora\\]'"):
        check_fits(tiny_project)


def test_a_qlora_run_trains_on_the_cpu_backend(tmp_path, smollm2_tokenizer, tiny_model_builder, make_project,
                                               code_pairs):
    pytest.importorskip("bitsandbytes", reason="the [test] extra installs it")
    # 4-bit blocks hold 64 weights: the layers must be at least that wide.
    model = tiny_model_builder(tmp_path / "tiny64", smollm2_tokenizer, hidden=64)
    project = make_project(tmp_path / "proj", str(model), code_pairs(12), **{
        "hardware.quantization": "nf4", "hardware.device": "cpu",  # bitsandbytes' CPU backend: slow, for checks
        "hyperparameters.max_steps": 10, "hyperparameters.save_steps": 5, "hyperparameters.batch_size": 2,
        "hyperparameters.learning_rate": 1e-3, "hardware.threads": 1})
    run = start_run(project)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    losses = [m["loss"] for m in run.metrics() if m["type"] == "train"]
    assert len(losses) == 10 and losses[-1] < losses[0]
    assert run.read_spec().hardware["quantization"] == "nf4"
    assert [c.name for c in run.complete_checkpoints()] == ["checkpoint-5", "checkpoint-10"]

"""The memory estimate's arithmetic: what it counts for each device and setting.

How close it comes to real peaks is measured by benchmarks/memory.py, not here."""

from __future__ import annotations

from tunewiz.hardware import ModelShape, estimate_memory
from tunewiz.hardware import CPU_PASS_TOKENS

SMOLLM2 = ModelShape(params=134_515_008, hidden=576, layers=30, intermediate=1536, vocab=49152)


def total(device="cpu", batch=1, seq=512, dropout=0.05, gc=False, precision="fp32") -> float:
    return estimate_memory(SMOLLM2, precision=precision, batch_size=batch, seq_len=seq, lora_r=16,
                           lora_dropout=dropout, gradient_checkpointing=gc, device=device).total_mb


def test_a_cpu_holds_one_pass_of_a_micro_batch_a_gpu_all_of_it():
    assert CPU_PASS_TOKENS == 512
    assert total("cpu", batch=16, seq=512) == total("cpu", batch=1, seq=512)
    assert total("cpu", batch=16, seq=32) == total("cpu", batch=1, seq=512)  # 16 short samples share a pass
    assert total("cpu", batch=2, seq=2048) == total("cpu", batch=1, seq=2048) > total("cpu", batch=1, seq=512)
    gpu_one, gpu_sixteen = total("cuda", batch=1), total("cuda", batch=16)
    assert gpu_sixteen - gpu_one > 10 * (total("cuda", batch=2) - gpu_one)


def test_dropout_and_checkpointing_change_the_activations():
    def activations(**kw):
        return estimate_memory(SMOLLM2, precision="fp32", batch_size=1, seq_len=2048, lora_r=16,
                               device="cpu", **kw).activations_mb

    with_dropout = activations(lora_dropout=0.05, gradient_checkpointing=False)
    without = activations(lora_dropout=0.0, gradient_checkpointing=False)
    checkpointed = activations(lora_dropout=0.05, gradient_checkpointing=True)
    assert with_dropout > 1.3 * without and checkpointed < with_dropout / 5


def test_lower_precision_halves_the_weights():
    fp32 = estimate_memory(SMOLLM2, precision="fp32", batch_size=1, seq_len=512, lora_r=16, lora_dropout=0,
                           gradient_checkpointing=False, device="cuda")
    bf16 = estimate_memory(SMOLLM2, precision="bf16", batch_size=1, seq_len=512, lora_r=16, lora_dropout=0,
                           gradient_checkpointing=False, device="cuda")
    assert bf16.weights_mb == fp32.weights_mb / 2 and bf16.lora_mb == fp32.lora_mb

"""Big bases on a CPU: bf16 weights when fp32 does not fit (the recommendation), and a real bf16 CPU run."""

from __future__ import annotations

from tunewiz.hardware import Hardware, ModelShape, recommend
from tunewiz.training.launch import start_run, wait_for_end

LLAMA_13B = ModelShape(params=13_015_864_320, hidden=5120, layers=40, intermediate=13824, vocab=32000)


def workstation(ram_mb: int, bf16: bool) -> Hardware:
    """A stand-in for a bigger CPU machine than this one."""
    return Hardware(cpu_cores=32, ram_total_mb=ram_mb, ram_available_mb=ram_mb - 2_000, cpu_bf16=bf16)


def test_bf16_weights_are_proposed_when_fp32_does_not_fit(project, monkeypatch):
    import tunewiz.hardware as hardware

    monkeypatch.setattr(hardware, "model_shape", lambda *args, **kwargs: LLAMA_13B)  # a 13B base, not downloaded
    project.set("hyperparameters.gradient_checkpointing", True)
    project.set("template.max_seq_len", 512)
    rec = recommend(project, workstation(48_000, bf16=True))
    assert rec.device == "cpu" and rec.precision == "bf16" and rec.estimate.total_mb < 0.9 * 46_000
    note = next(n for n in rec.notes if "does not fit in fp32" in n)
    assert "natively" in note and "hardware.precision = bf16" in note
    assert project.config.hardware.precision == "auto"  # proposed, never switched silently

    slow = recommend(project, workstation(48_000, bf16=False))
    assert slow.precision == "bf16" and any("no native bf16" in n for n in slow.notes)
    assert recommend(project, workstation(128_000, bf16=True)).precision == "fp32"  # fp32 fits: it stays
    small = recommend(project, workstation(16_000, bf16=True))  # bf16 does not fit; 4 bits would, too slowly
    assert small.precision == "fp32" and small.quantization == "none"  # said, not proposed
    assert any("in fp32 or bf16" in n and "would need" in n and "far too slowly" in n for n in small.notes)
    tiny = recommend(project, workstation(6_000, bf16=True))
    assert any("in fp32 or bf16" in n and "would need" not in n for n in tiny.notes)


def test_a_bf16_run_trains_on_the_cpu(tiny_project):
    tiny_project.set("hardware.precision", "bf16")
    tiny_project.set("hardware.device", "cpu")
    tiny_project.set("hyperparameters.max_steps", 10)
    run = start_run(tiny_project)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    assert "precision bf16" in run.log_path.read_text()
    losses = [m["loss"] for m in run.metrics() if m["type"] == "train"]
    assert len(losses) == 10 and losses[-1] < losses[0]

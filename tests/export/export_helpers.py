"""Run folders for the export tests: crafted metrics, and a tiny real model with a real LoRA."""

from __future__ import annotations

import json
from pathlib import Path

from tunewiz.project import Project
from tunewiz.runs import COMPLETE_MARKER, Run, RunStatus

# Validation loss falls to its lowest at step 30, then rises at 40, 50, 60 while train loss keeps
# falling: overfitting began at step 40 and is seen (K=3) at step 60.
VAL = {10: 2.0, 20: 1.5, 30: 1.2, 40: 1.3, 50: 1.45, 60: 1.7}


def make_run(project: Project, val=VAL, steps=60, complete=(10, 20, 30, 40, 50, 60), incomplete=(),
             run_id="20260101-000000-aaaa", base_dir="/nonexistent/base") -> Run:
    run = Run(project.runs_dir / run_id)
    run.dir.mkdir(parents=True)
    run.write_status(RunStatus(state="finished", step=steps, max_steps=steps))
    lines = []
    for step in range(1, steps + 1):
        lines.append({"type": "train", "step": step, "epoch": step / 10, "loss": 3.0 - step * 0.04, "lr": 1e-3})
        if step in val:
            lines.append({"type": "eval", "step": step, "epoch": step / 10, "val_loss": val[step]})
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run.dir / "run.json").write_text(json.dumps({
        "base_dir": str(base_dir), "template": {"name": "auto", "family": "chatml"},
        "system_prompt": "Be brief.", "max_seq_len": 256, "train_ids": ["a"], "validation_ids": ["b"],
        "base_model": {"model": "smollm2-135m", "gguf_file": ""}}))
    for step in list(complete) + list(incomplete):
        folder = run.checkpoints_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        if step in complete:
            (folder / COMPLETE_MARKER).write_text("{}")
    return run




def tiny_base(folder: Path, hidden: int = 64) -> Path:
    """A tiny random Llama model saved as a plain HF folder (float32 safetensors)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=128, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def tiny_adapter(base_dir: Path, out: Path) -> None:
    """A real PEFT LoRA adapter on the tiny base, saved into a checkpoint folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    model = get_peft_model(LlamaForCausalLM.from_pretrained(base_dir), LoraConfig(r=4, target_modules="all-linear"))
    model.save_pretrained(out)

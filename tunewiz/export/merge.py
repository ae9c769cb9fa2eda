"""Merge a LoRA checkpoint into a 16/32-bit copy of its base model and save a plain HF folder.

Merging into a quantized base ruins quality, so the base must hold float weights
(the run's base_dir does: GGUF bases are dequantized once by tunewiz.basemodel).
The merged folder carries the tokenizer, the chat template the run trained with
(so llama.cpp and transformers render prompts as training did) and a generation
config that stops at the template's end-of-turn token.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tunewiz.templates import hf_chat_template, stop_token_ids

def merge_checkpoint(base_dir: Path, adapter_dir: Path, family: str, out_dir: Path, dtype: str) -> Path:
    """Write base + LoRA merged (in float32, saved in the base's dtype) as a plain HF folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(base_dir)
    if hasattr(config, "quantization_config"):  # only a 'gguf' note can reach here (see check_base)
        del config.quantization_config
    from tunewiz.models import quiet_model_loading

    quiet_model_loading()
    model = AutoModelForCausalLM.from_pretrained(base_dir, config=config, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model = model.to(getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    template = hf_chat_template(family)
    if template is not None:
        tokenizer.chat_template = template

    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.config.dtype = dtype
        generation = model.generation_config
        generation.eos_token_id = stop_token_ids(family, tokenizer)
        if generation.pad_token_id is None:
            generation.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir

"""Merge a LoRA checkpoint into a 16/32-bit copy of its base model and save a plain HF folder.

Merging into a quantized base ruins quality, so the base must hold float weights
(the run's base_dir does: GGUF bases are dequantized once by tunewiz.basemodel).
The merged folder carries the tokenizer, the chat template the run trained with
(so llama.cpp and transformers render prompts as training did) and a generation
config that stops at the template's end-of-turn token.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tunewiz.errors import TunewizError
from tunewiz.templates import hf_chat_template, stop_token_ids

FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def safetensors_headers(folder: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> {dtype, shape} of every safetensors file in a folder (headers only, no torch)."""
    tensors: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with open(file, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        tensors.update(header)
    return tensors


def check_base(base_dir: Path, adapter_dir: Path, run_json: Path) -> str:
    """Check that the base model is there, unquantized, and still the model the adapter was trained
    on (every adapted layer exists with the shape the adapter expects). Returns its float dtype."""
    if not (base_dir / "config.json").is_file():
        raise TunewizError(f"{run_json}: base_dir {base_dir} is gone (no config.json there); the run "
                           "trained on that folder, so restore it or retrain")
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    quant = (config.get("quantization_config") or {}).get("quant_method")
    if quant and quant != "gguf":  # 'gguf' only records where dequantized weights came from
        raise TunewizError(f"{base_dir / 'config.json'}: the base model is quantized ({quant}); a LoRA "
                           "merged into a quantized base loses quality. Point the run at a 16/32-bit copy")
    base = safetensors_headers(base_dir)
    if not base:
        raise TunewizError(f"{base_dir}: no .safetensors weights; the merge needs the base model's weights")
    dtypes = {info["dtype"] for info in base.values()}
    if not dtypes <= set(FLOAT_DTYPES):
        raise TunewizError(f"{base_dir}: weights of type {', '.join(sorted(dtypes - set(FLOAT_DTYPES)))}; "
                           "the merge needs a 16/32-bit base model")
    adapter = safetensors_headers(adapter_dir)
    if not adapter:
        raise TunewizError(f"{adapter_dir}: no adapter_model.safetensors; not a LoRA checkpoint")
    for name, info in adapter.items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module = name.split(".lora_")[0].removeprefix("base_model.model.")
        weight = base.get(f"{module}.weight")
        mismatch = weight is None
        if weight is not None:
            out_features, in_features = weight["shape"][0], weight["shape"][-1]
            mismatch = (info["shape"][-1] != in_features if ".lora_A." in name
                        else info["shape"][0] != out_features)
        if mismatch:
            raise TunewizError(f"{base_dir}: the base model no longer matches run checkpoint {adapter_dir} "
                               f"(layer {module} is missing or has another shape); the folder was replaced "
                               "after training. Restore the original base model or retrain")
    return FLOAT_DTYPES["BF16"] if dtypes == {"BF16"} else FLOAT_DTYPES["F16"] if dtypes == {"F16"} else "float32"


def merge_checkpoint(base_dir: Path, adapter_dir: Path, family: str, out_dir: Path, dtype: str) -> Path:
    """Write base + LoRA merged (in float32, saved in the base's dtype) as a plain HF folder."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(base_dir)
    if hasattr(config, "quantization_config"):  # only a 'gguf' note can reach here (see check_base)
        del config.quantization_config
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

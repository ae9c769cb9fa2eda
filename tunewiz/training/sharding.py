"""FSDP: a base model sharded over the run's processes (`hardware.sharding = "fsdp"`).

Each process keeps 1/world of every weight; a decoder layer's weights are gathered just
for its forward and backward passes (torch FSDP2, `fully_shard`), so a model that does
not fit one GPU trains over several. The LoRA weights and their optimizer state are
sharded the same way.

Checkpoints stay the same files as an unsharded run's (tunewiz.training.checkpoints):
the adapter and the optimizer state are gathered whole (they are small: the LoRA weights,
not the base) and rank 0 writes them, so export, the checkpoint table and a resume on
another number of processes read them as always; a resume splits them again.

Every forward pass of a sharded model needs every process (each holds part of each layer),
so whatever runs a forward (training passes, validation, the per-checkpoint checks) runs on
all processes in lockstep: the same number of passes on each.
"""

from __future__ import annotations

from typing import Any

ADAPTER = "default"
"""PEFT's adapter name: in the model's parameter names, absent from the saved adapter's keys."""


def shard_model(model: Any, precision: str) -> int:
    """fully_shard each decoder layer, then the transformers model (embeddings, norm, output layer);
    returns the number of layers. Under 16-bit precision the fp32 LoRA weights are gathered in
    16 bits like the base (one dtype per gather) and gradients reduced in fp32."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
    base = model.get_base_model()  # the root: the module both training and generate() call (see the engine)
    layer_classes = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in base.modules() if type(m).__name__ in layer_classes]
    for layer in layers:
        fully_shard(layer, mp_policy=policy)
    fully_shard(base, mp_policy=policy)
    return len(layers)


def full_grad_norm(norm: Any) -> float:
    """clip_grad_norm_ over sharded gradients returns a distributed tensor: its value, the same everywhere."""
    from torch.distributed.tensor import DTensor

    return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)


def _options(**kw: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, ignore_frozen_params=True, **kw)


def _trainable_names(model: Any) -> list[str]:
    """The optimizer's parameters in its own order (build_optimizer: trainable parameters in model order)."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def gather_state(model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole adapter (model parameter names) and the whole optimizer state in the plain
    `optimizer.state_dict()` layout, on rank 0 (empty elsewhere). Every process must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    adapter = get_model_state_dict(model, options=_options(cpu_offload=True))
    by_name = get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))
    if not adapter:
        return {}, {}
    index = {name: i for i, name in enumerate(_trainable_names(model))}
    plain = {"state": {index[name]: value for name, value in by_name["state"].items()},
             "param_groups": [dict(group, params=[index[name] for name in group["params"]])
                              for group in by_name["param_groups"]]}
    return adapter, plain


def load_state(model: Any, optimizer: Any, adapter_file: Any, optimizer_state: dict[str, Any]) -> None:
    """Split a checkpoint's whole adapter (PEFT's keys) and plain optimizer state over the processes.
    Every process must call it; each reads the files itself (the project folder is shared)."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    names = _trainable_names(model)
    saved = load_file(str(adapter_file))
    by_saved_key = {name.replace(f".{ADAPTER}", ""): name for name in names}
    missing = sorted(set(by_saved_key) - set(saved))
    if missing:
        raise ValueError(f"the checkpoint's adapter lacks {len(missing)} weights of this model, e.g. {missing[0]}")
    set_model_state_dict(model, {by_saved_key[key]: saved[key] for key in by_saved_key}, options=_options())
    by_name = {"state": {names[i]: value for i, value in optimizer_state["state"].items()},
               "param_groups": [dict(group, params=[names[i] for i in group["params"]])
                                for group in optimizer_state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=_options())

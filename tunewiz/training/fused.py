"""Fused projections: a decoder layer's q/k/v, and its MLP's gate/up, as one matmul each, LoRA included.

A compiled LoRA layer on a GPU is bound by the host launching kernels when rows are short (QA
pairs): each of the 7 adapted linears runs three matmuls forward (base, A, B) and more backward.
The projections that read the same input can share them: one matmul over the concatenated base
weights, one into all their A ranks and one out of their B's laid block-diagonally, so q/k/v and
gate/up take 3 matmuls where they took 9 and 6.

How, without rewriting any model's attention: the attention (or MLP) module is handed the fused
output in place of its input, and its q/k/v (gate/up) projections return their slice of it. The
modules only read their input's shape (all but the last dimension, which the fused output shares)
and pass it to those projections, so their own forward, whatever the transformers version, runs
as it is. The LoRA weights stay where PEFT keeps them (the adapter saves as before), and the base
weights become views of the concatenated one (no second copy).

A 4-bit NF4 base (QLoRA, bitsandbytes) fuses the same way, and matters more there: each 4-bit linear
also dequantizes its weight, forward and backward. Its weights are quantized in blocks of 64 that
never straddle two weights, so the concatenated packed weights are one valid 4-bit weight; its block
scales are kept unnested in fp32 (what bitsandbytes' kernels compute from the nested ones), so the
fused matmul dequantizes the very values each projection would (about 4 % more memory for the
fused weights' scales, 0.5 bit a weight; the packed weights themselves are held once).
"""

from __future__ import annotations

from tunewiz.training.layout import is_column_major

ATTENTION = ("q_proj", "k_proj", "v_proj")
MLP = ("gate_proj", "up_proj")


def fuse_projections(model) -> int:
    """Fuse every q/k/v and gate/up group of the PEFT model that can be fused; returns how many were.

    A group is fused when its projections are plain LoRA linears on nn.Linear weights (or bitsandbytes 4-bit
    weights quantized alike) of one dtype and device, reading one input, with one active adapter, vanilla LoRA (no DoRA) and no dropout.
    Others are left as they are."""
    fused = 0
    for module in list(model.modules()):
        for names in (ATTENTION, MLP):
            linears = [getattr(module, name, None) for name in names]
            if all(linear is not None for linear in linears) and _fusable(linears):
                _fuse(module, names, linears)
                fused += 1
    return fused


def _fusable(linears) -> bool:
    import torch

    if not (_plain(linears) or _nf4(linears)):  # a projection without LoRA (target_modules names others) too
        return False
    adapters = [linear.active_adapters for linear in linears]
    if any(len(a) != 1 or a != adapters[0] for a in adapters):
        return False
    name = adapters[0][0]
    bases = [linear.base_layer for linear in linears]
    return (len({(b.weight.dtype, b.weight.device, b.in_features) for b in bases}) == 1
            and len({b.bias is None for b in bases}) == 1
            and all(name in linear.lora_A and not linear.merged
                    and name not in getattr(linear, "lora_variant", {})  # DoRA and other variants (peft >= 0.15)
                    and not getattr(linear, "use_dora", {}).get(name, False)  # DoRA before
                    and isinstance(linear.lora_dropout[name], torch.nn.Identity) for linear in linears))


def _plain(linears) -> bool:
    """PEFT's LoRA linears on plain nn.Linear weights."""
    import torch
    from peft.tuners.lora import Linear as LoraLinear

    return all(type(linear) is LoraLinear and type(linear.base_layer) is torch.nn.Linear for linear in linears)


def _nf4(linears) -> bool:
    """PEFT's LoRA linears on bitsandbytes 4-bit weights quantized alike, each a whole number of blocks."""
    try:
        import bitsandbytes as bnb
        from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit
    except ImportError:
        return False
    if not all(type(linear) is LoraLinear4bit and type(linear.base_layer) is bnb.nn.Linear4bit for linear in linears):
        return False
    states = [linear.base_layer.weight.quant_state for linear in linears]
    if any(state is None or getattr(state, "packing_format_for_cpu", False) for state in states):
        return False
    alike = {(s.blocksize, s.quant_type, s.dtype, linear.base_layer.compute_dtype)
             for s, linear in zip(states, linears)}
    return (len(alike) == 1 and linears[0].base_layer.compute_dtype is not None
            and all(s.shape[0] * s.shape[1] % s.blocksize == 0 for s in states))


def _slice_forward(self, fused_output, *args, **kwargs):
    """A projection's forward once fused: its columns of the fused output it is handed."""
    start, stop = self.fused_columns
    return fused_output[..., start:stop]


def _fused_forward(self, hidden_states, *args, **kwargs):
    """The module's own forward, handed the fused output in place of its input. One function bound to
    every fused module, its weights on the module, so the layers of a compiled model share one graph."""
    return type(self).forward(self, _fused_output(hidden_states, self), *args, **kwargs)


def _fuse(module, names: tuple[str, ...], linears) -> None:
    import types

    import torch

    bases = [linear.base_layer for linear in linears]
    weights = [base.weight.detach() for base in bases]
    if all(is_column_major(w) for w in weights):  # kept so (tunewiz/training/layout.py): the rows stay views
        weight = torch.cat([w.t() for w in weights], dim=1).t()
    else:
        weight = torch.cat(weights)  # 4-bit: the packed bytes, one column
    bias = None if bases[0].bias is None else torch.cat([base.bias.detach() for base in bases])
    module.fused_quant_state = _nf4_state(bases) if _nf4(linears) else None
    start = row = 0
    for linear, base in zip(linears, bases):
        stop, rows = start + base.out_features, base.weight.shape[0]
        base.weight.data = weight[row:row + rows]  # a view: the layer's weights are held once
        if bias is not None:
            base.bias.data = bias[start:stop]
        linear.fused_columns = (start, stop)
        linear.forward = types.MethodType(_slice_forward, linear)
        start, row = stop, row + rows
    # not in the state_dict: checkpoints hold the LoRA weights alone, as before
    module.register_buffer("fused_weight", weight, persistent=False)
    module.register_buffer("fused_bias", bias, persistent=False)
    module.fused_names = names
    module.fused_adapter = linears[0].active_adapters[0]
    module.forward = types.MethodType(_fused_forward, module)


def _nf4_state(bases):
    """The quantization state of the concatenated 4-bit weights: their block scales side by side, unnested."""
    import torch
    from bitsandbytes.functional import QuantState, dequantize_blockwise

    states = [base.weight.quant_state for base in bases]
    absmax = torch.cat([dequantize_blockwise(s.absmax, s.state2) + s.offset if s.nested else s.absmax
                        for s in states])
    shape = torch.Size([sum(s.shape[0] for s in states), states[0].shape[1]])
    first = states[0]
    return QuantState(absmax=absmax.float(), shape=shape, code=first.code, blocksize=first.blocksize,
                      quant_type=first.quant_type, dtype=first.dtype)


def _fused_output(x, module):
    """What the fused projections of `module` would return, side by side on the last dimension."""
    import torch
    import torch.nn.functional as F

    linears = [getattr(module, name) for name in module.fused_names]
    if linears[0].merged:  # LoRA merged into each base weight: in place, so into the fused weight, unless
        # PEFT replaced a weight (a safe merge): then no longer a view of it, and each projection runs alone
        if module.fused_quant_state is None and all(_views_fused(linear.base_layer.weight, module) for linear in linears):
            return F.linear(x, module.fused_weight, module.fused_bias)
        return torch.cat([linear.base_layer(x) for linear in linears], dim=-1)
    if module.fused_quant_state is None:
        result = F.linear(x, module.fused_weight, module.fused_bias)
    else:
        result = _nf4_linear(x, module, linears[0].base_layer.compute_dtype)
    if linears[0].disable_adapters:  # PEFT's disable_adapter(): the base model's answers
        return result
    adapter = module.fused_adapter
    a = torch.cat([linear.lora_A[adapter].weight for linear in linears])
    b = torch.block_diag(*(linear.lora_B[adapter].weight * linear.scaling[adapter] for linear in linears))
    return result + F.linear(F.linear(x, a), b)


def _views_fused(weight, module) -> bool:
    return weight.untyped_storage().data_ptr() == module.fused_weight.untyped_storage().data_ptr()


def _nf4_linear(x, module, compute_dtype):
    """bitsandbytes' 4-bit matmul over the fused weights, as its Linear4bit runs one."""
    import bitsandbytes as bnb

    state = module.fused_quant_state
    if state.absmax.device != module.fused_weight.device:  # the module moved (.to): its scales are no buffer
        state.to(module.fused_weight.device)
    bias = None if module.fused_bias is None else module.fused_bias.to(compute_dtype)
    return bnb.matmul_4bit(x.to(compute_dtype), module.fused_weight, bias=bias, quant_state=state).to(x.dtype)

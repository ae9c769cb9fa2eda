"""Frozen linear weights stored column-major on a CPU: the checks decode twice as fast.

A linear layer computes x @ W.T. PyTorch hands a row-major W to MKL's sgemm as a transposed
operand, and for a few rows (a batch of checks decoding one token each: 8 to 40 rows) that call
runs at half the speed of the same product with W stored column-major, where W.T is a plain
row-major matrix (measured on a 2-core Xeon, SmolLM2-135M: a decoding step of 40 rows 124-154 ms
against 200-262 ms, of 16 rows 81-126 against 167-210). From 64 rows on, training's passes among
them, both layouts run at the same speed. The values are the same and so are the answers; only
where the numbers lie in memory changes, once, when the model is built.
"""

from __future__ import annotations


def column_major_weights(model) -> int:
    """Store every frozen fp32 nn.Linear weight of `model` column-major; returns how many were.

    Trainable weights (the LoRA adapters) are left as they are: the optimizer keeps them as they come.
    So are 16-bit weights: their products go through oneDNN, not MKL's sgemm, and were not measured."""
    import torch

    done: set[int] = set()
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (not isinstance(module, torch.nn.Linear) or not isinstance(weight, torch.Tensor)
                or weight.requires_grad or weight.dtype != torch.float32 or weight.dim() != 2
                or id(weight) in done):
            continue
        done.add(id(weight))  # a weight tied to the embedding (the output layer) is one tensor: once
        if not is_column_major(weight):
            weight.data = weight.data.t().contiguous().t()
    return len(done)


def is_column_major(tensor) -> bool:
    """A 2-D tensor (not one row or one column) whose columns lie each in one run of memory, one after the
    other or further apart (rows of a column-major matrix, as the fused weights' views are): BLAS reads
    its transpose as a row-major matrix with a leading dimension, without a copy."""
    return (tensor.dim() == 2 and min(tensor.shape) > 1 and tensor.stride(0) == 1
            and tensor.stride(1) >= tensor.shape[0])

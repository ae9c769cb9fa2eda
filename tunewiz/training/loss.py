"""The training loss: cross-entropy on answer tokens, with logits only where they are needed.

A causal LM's output layer is a [tokens, vocabulary] matmul (for SmolLM2 a fifth of the
model's FLOPs per token), followed by a softmax over the vocabulary. The loss reads the
logits only at positions whose next token is an answer token, so the engine asks
transformers for those positions alone (`logits_to_keep` with a tensor of indices):
prompt tokens and filler cost no output-layer work, no softmax and no logits memory.
The result is the same number transformers' own loss gives (tests/training).
"""

from __future__ import annotations

import inspect
from typing import Any


def keeps_logits_by_index(model: Any) -> bool:
    """Whether the model's forward takes `logits_to_keep` (most causal LMs of transformers 4.50+)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def answer_loss(model: Any, batch: dict[str, Any], num_items: int, by_index: bool = True):
    """Summed cross-entropy of the answer tokens of `batch`, divided by num_items.

    num_items is the answer-token count of the whole optimizer step (all micro-batches,
    all processes), so gradients of the micro-batches add up to the step's mean.
    by_index=False (a model without `logits_to_keep`) lets transformers compute the loss.
    """
    if not by_index:
        return model(**batch, num_items_in_batch=num_items, use_cache=False).loss
    import torch.nn.functional as F

    labels = batch["labels"]
    targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # position t predicts the token at t + 1
    keep = (targets != -100).any(dim=0).nonzero().flatten()
    inputs = {name: value for name, value in batch.items() if name != "labels"}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets[:, keep].flatten(), ignore_index=-100,
                           reduction="sum")
    return loss / num_items

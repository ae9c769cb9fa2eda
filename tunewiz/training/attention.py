"""Which attention the engine asks transformers for, and the per-sample attention for CPUs.

A packed row holds several samples end to end, positions restarting at 0 for each
(see `data.collate_flat`). With transformers' "sdpa", such a row gets a block-diagonal
mask over the whole row: the kernel scores every query against every key of the row and
masks most of them away (about three quarters with four QA samples a row). On a GPU,
flash-attention's varlen kernel avoids that; a CPU has no such kernel. There the engine
uses SAMPLE_SDPA, which runs transformers' own sdpa attention once per sample of the row
(causal, no mask): no score is computed across samples, while the matmuls around the
attention still see the whole row at once. Measured in docs/train.md.
"""

from __future__ import annotations

import os
from typing import Any

SAMPLE_SDPA = "tunewiz_sample_sdpa"


def sample_lengths(position_ids: Any) -> list[int]:
    """Lengths of the samples of one packed row: a sample starts where its position is 0."""
    starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        return []
    ends = starts[1:] + [int(position_ids.shape[1])]
    return [end - start for start, end in zip(starts, ends)]


def sample_sdpa_forward(module, query, key, value, attention_mask, position_ids=None, **kwargs):
    """transformers' sdpa attention, run once per sample of a packed row.

    query/key/value are [batch, heads, tokens, head_dim]. Anything that is not a packed
    row of several samples (a plain batch, a padded batch, a sliding window, whose limit
    lives in the mask) goes to sdpa unchanged, with transformers' mask.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lengths = []
    if position_ids is not None and query.shape[0] == 1 and kwargs.get("sliding_window") is None:
        lengths = sample_lengths(position_ids)
    if len(lengths) < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    import torch

    parts = [sdpa_attention_forward(module, q, k, v, None, **kwargs)[0]  # [1, tokens, heads, head_dim]
             for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2))]
    return torch.cat(parts, dim=1), None


def register() -> None:
    """Make SAMPLE_SDPA known to transformers (the mask it is handed is sdpa's, for the fallback)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(SAMPLE_SDPA, sample_sdpa_forward)
    AttentionMaskInterface.register(SAMPLE_SDPA, sdpa_mask)


def pick_attention(device: str) -> str:
    """The fastest attention that keeps packed samples apart on this device.

    CUDA: flash-attention's varlen kernels when the package is installed, else sdpa with a
    block-diagonal mask (a compiled layer cannot loop over samples). CPU: SAMPLE_SDPA.
    MPS: sdpa (SAMPLE_SDPA is untested there). TUNEWIZ_ATTENTION forces a choice.
    """
    choice = os.environ.get("TUNEWIZ_ATTENTION")
    if not choice:
        choice = "sdpa"
        if device == "cuda":
            import importlib.util

            if importlib.util.find_spec("flash_attn") is not None:
                choice = "flash_attention_2"
        elif device == "cpu":
            choice = SAMPLE_SDPA
    if choice == SAMPLE_SDPA:
        register()
    return choice

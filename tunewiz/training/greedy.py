"""Greedy decoding of many short answers at once, for the per-checkpoint checks.

transformers' generate() keeps every row in the batch until the last one ends, so the rows that
ended early (a recalled fact stops at its end-of-turn token, an everyday prompt at 16 tokens) are
still computed at every step. Here a row leaves the batch, and the key/value cache, the step it
ends: later steps multiply fewer rows. The tokens are the ones generate() picks (argmax of the
logits, no processors: the checks never sample or penalise).

Under FSDP (`lockstep`) every process must run the same passes, since each one gathers weights
from all: there the batch keeps its rows and every process decodes until all processes are done.
"""

from __future__ import annotations

import inspect
from typing import Any


def greedy_decode(model: Any, prompts: list[list[int]], limits: list[int], stop_ids: list[int], pad_id: int,
                  device: Any, lockstep: bool = False) -> list[list[int]]:
    """The greedy continuation of each prompt (token ids): up to its limit, without the stop token."""
    import torch

    count = len(prompts)
    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each prompt starts at position 0
    answers: list[list[int]] = [[] for _ in range(count)]
    rows = list(range(count))  # the prompt of each batch row
    ended = [limit <= 0 for limit in limits]
    stops = set(stop_ids)
    keep_last = {"logits_to_keep": 1} if _takes(model, "logits_to_keep") else {}
    by_position = _takes(model, "position_ids")  # not models that place tokens by the mask alone (ALiBi)
    cache_argument = "cache" if _takes(model, "cache") else "past_key_values"  # renamed in transformers 5.2x
    cache = None
    while not _all_done(ended, rows, lockstep, device):
        with torch.no_grad():
            output = model(input_ids=input_ids, attention_mask=mask, use_cache=True, **{cache_argument: cache},
                           **({"position_ids": positions} if by_position else {}), **keep_last)
        cache = output[cache_argument]
        chosen = output.logits[:, -1].argmax(-1)
        for token, row in zip(chosen.tolist(), rows):
            if ended[row]:
                continue
            if token in stops:
                ended[row] = True
            else:
                answers[row].append(token)
                ended[row] = len(answers[row]) >= limits[row]
        going = list(range(len(rows))) if lockstep else [i for i, row in enumerate(rows) if not ended[row]]
        if not going:
            break
        if len(going) < len(rows):
            index = torch.tensor(going, device=device)
            cache.batch_select_indices(index)
            chosen, mask, positions = chosen[index], mask[index], positions[index]
            rows = [rows[i] for i in going]
        input_ids = chosen[:, None]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        positions = positions[:, -1:] + 1
    return answers


def _all_done(ended: list[bool], rows: list[int], lockstep: bool, device: Any) -> bool:
    """Whether decoding is over: every row of this process ended (in lockstep: of every process)."""
    done = all(ended[row] for row in rows)
    if not lockstep:
        return done
    import torch
    import torch.distributed as dist

    going = torch.tensor([0 if done else 1], device=device)
    dist.all_reduce(going, op=dist.ReduceOp.MAX)
    return not bool(going.item())


def _takes(model: Any, argument: str) -> bool:
    """Whether the causal LM under `model` (PEFT or FSDP wrapped) accepts `argument` in forward()."""
    inner = model
    while True:
        getter = getattr(inner, "get_base_model", None)
        if getter is None:
            break
        inner = getter()
    try:
        return argument in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False

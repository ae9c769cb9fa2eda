"""The engine's loss and CPU attention give what transformers' own loss and sdpa give."""

from __future__ import annotations

import pytest

from tunewiz.training import data as D
from tunewiz.training.attention import SAMPLE_SDPA, register, sample_lengths
from tunewiz.training.loss import answer_loss, keeps_logits_by_index


@pytest.fixture
def examples(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    records = [{"question": "What is " + "very " * n + "odd?", "answer": "It is odd " * (n + 2)} for n in (1, 6, 3, 9)]
    return D.tokenize_records(records, tokenizer, "chatml", "You answer.", 512).examples


def load(tiny_model, attention: str):
    import torch
    from transformers import AutoModelForCausalLM

    register()
    return AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention, dtype=torch.float32)


def loss_and_grads(model, batch, items, by_index=True):
    model.zero_grad(set_to_none=True)
    loss = answer_loss(model, batch, items, by_index)
    loss.backward()
    return float(loss.detach()), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same(a, b):
    import torch

    assert a[0] == pytest.approx(b[0], rel=1e-5)
    assert a[1].keys() == b[1].keys() and a[1]
    for name in a[1]:
        assert torch.allclose(a[1][name], b[1][name], atol=1e-5, rtol=1e-4), name


def test_answer_loss_equals_transformers_loss_with_fewer_logits(tiny_model, examples):
    model = load(tiny_model, "sdpa")
    assert keeps_logits_by_index(model)
    for batch in (D.collate_flat(examples), D.collate_padded(examples, 0)):
        items = D.answer_tokens(batch)
        assert_same(loss_and_grads(model, batch, items), loss_and_grads(model, batch, items, by_index=False))

    # the output layer ran on answer positions only
    seen = []
    handle = model.lm_head.register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    batch = D.collate_flat(examples)
    answer_loss(model, batch, 1)
    handle.remove()
    assert seen == [D.answer_tokens(batch)] and seen[0] < batch["input_ids"].shape[1]


def test_per_sample_attention_trains_like_the_block_diagonal_mask(tiny_model, examples, monkeypatch):
    from transformers.integrations import sdpa_attention

    batch = D.collate_flat(examples)
    lengths = [len(e.input_ids) for e in examples]
    assert sample_lengths(batch["position_ids"]) == lengths
    items = D.answer_tokens(batch)
    reference = loss_and_grads(load(tiny_model, "sdpa"), batch, items)

    # Record what reaches transformers' sdpa: equal results alone would also come from a
    # silent fallback to the block-diagonal mask over the whole row.
    calls = []
    original = sdpa_attention.sdpa_attention_forward

    def spy(module, query, key, value, attention_mask, **kwargs):
        calls.append((query.shape[2], attention_mask is None))
        return original(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", spy)
    model = load(tiny_model, SAMPLE_SDPA)
    assert_same(loss_and_grads(model, batch, items), reference)
    layers = model.config.num_hidden_layers
    assert calls == [(length, True) for length in lengths] * layers


def test_per_sample_attention_leaves_padded_batches_to_sdpa(tiny_model, examples):
    batch = D.collate_padded(examples, 0)
    items = D.answer_tokens(batch)
    assert_same(loss_and_grads(load(tiny_model, SAMPLE_SDPA), batch, items),
                loss_and_grads(load(tiny_model, "sdpa"), batch, items))

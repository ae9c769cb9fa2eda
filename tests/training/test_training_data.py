"""Padding-free batches: samples laid end to end must not see each other."""

from __future__ import annotations

import pytest

from tunewiz.training import data as D
from tunewiz.training.attention import SAMPLE_SDPA, register


@pytest.mark.parametrize("attention", ["sdpa", SAMPLE_SDPA])
def test_flattened_batch_keeps_attention_within_each_sample(tiny_model, attention):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    records = [{"question": "q" * n, "answer": "answer " * (n + 1)} for n in (3, 7, 12)]
    examples = D.tokenize_records(records, tokenizer, "chatml", "", 512).examples
    register()
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attention).eval()
    flat = D.collate_flat(examples)
    assert flat["input_ids"].shape[0] == 1 and "attention_mask" not in flat
    with torch.no_grad():
        packed = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"], use_cache=False).logits[0]
        offset = 0
        for example in examples:
            alone = model(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0]
            part = packed[offset:offset + len(example.input_ids)]
            assert torch.allclose(part, alone, atol=1e-4), "a packed sample attended to its neighbour"
            offset += len(example.input_ids)
    # no loss across the boundary: each sample's first label is masked
    starts = [0, len(examples[0].input_ids), len(examples[0].input_ids) + len(examples[1].input_ids)]
    assert all(int(flat["labels"][0, s]) == -100 for s in starts)
    assert D.real_tokens(flat) == sum(len(e.input_ids) for e in examples)


def test_equal_lengths_stack_without_mask():
    examples = [D.Example([1, 2, 3], [-100, 2, 3]), D.Example([4, 5, 6], [-100, -100, 6])]
    batch = D.collate_flat(examples)
    assert tuple(batch["input_ids"].shape) == (2, 3) and "position_ids" not in batch
    assert D.answer_tokens(batch) == 3


def test_micro_batches_cover_every_sample_and_replay():
    first = D.micro_batches(10, 3, 1, 0, seed=5, epoch=0)
    assert {i for b in first for i in b} == set(range(10)) and sum(map(len, first)) == 12
    assert first == D.micro_batches(10, 3, 1, 0, seed=5, epoch=0)
    assert first != D.micro_batches(10, 3, 1, 0, seed=5, epoch=1)
    ranks = [D.micro_batches(10, 2, 2, r, seed=5, epoch=0) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 3  # same number of steps on every process
    seen = {i for r in ranks for b in r for i in b}
    assert seen == set(range(10))


def test_question_dropout_leaves_out_lowercase_words_only():
    import random

    question = "How tall is Mount Carrow, Tarvenna's highest peak in 2021?"
    variants = {D.drop_question_words(question, 0.5, random.Random(seed)) for seed in range(30)}
    assert len(variants) > 5  # different words left out with different seeds
    for variant in variants:
        for kept in ("How", "Mount", "Carrow,", "Tarvenna's", "2021?"):  # names, numbers, the question word
            assert kept in variant.split(), variant
        assert variant.endswith("?") and "  " not in variant
    assert "Which festival?" in {D.drop_question_words("Which festival is it?", 0.9, random.Random(s))
                                 for s in range(30)}  # a word left out keeps its "?"
    assert D.drop_question_words("what is it?", 1.0, random.Random(0)) == "what is it?"  # never empty
    assert D.drop_question_words(question, 0.0, random.Random(0)) == question


def test_question_dropout_changes_each_pass_keeps_the_answer_and_replays(smollm2_tokenizer):
    records = [{"question": "word " * 300, "answer": "x"},  # dropped by the tokenizing: longer than the rows
               {"question": "When was the Tarvenna Maritime Academy founded by its first rector?",
                "answer": "The Tarvenna Maritime Academy was founded in 1871."}]
    tokenized = D.tokenize_records(records, smollm2_tokenizer, "chatml", "", 128)
    assert tokenized.dropped == 1 and tokenized.records == records[1:]
    dropout = D.QuestionDropout(0.4, 42, smollm2_tokenizer, "chatml", "", 128)
    passes = [dropout.example(tokenized, 0, epoch) for epoch in range(8)]
    prompts = {smollm2_tokenizer.decode([t for t, label in zip(e.input_ids, e.labels) if label == -100])
               for e in passes}
    assert len(prompts) > 3  # a different question most passes
    answer = [label for label in tokenized.examples[0].labels if label != -100]
    for example in passes:
        assert [label for label in example.labels if label != -100] == answer  # the answer trains whole
        assert len(example.input_ids) <= len(tokenized.examples[0].input_ids)
        assert "Tarvenna Maritime Academy" in smollm2_tokenizer.decode(example.input_ids)  # its own record
    assert dropout.example(tokenized, 0, 3).input_ids == passes[3].input_ids  # a resumed run trains the same


def test_truncation_and_dropping_are_counted(smollm2_tokenizer):
    records = [{"question": "short", "answer": "word " * 200}, {"question": "word " * 300, "answer": "x"},
               {"question": "fine", "answer": "ok"}]
    result = D.tokenize_records(records, smollm2_tokenizer, "chatml", "", 64)
    assert result.truncated == 1 and result.dropped == 1 and len(result.examples) == 2
    assert max(len(e.input_ids) for e in result.examples) == 64


def test_filler_rounds_a_packed_row_up_without_touching_the_samples(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    examples = [D.Example([5, 6, 7, 8, 9], [-100, -100, 7, 8, 9]), D.Example([10, 11, 12], [-100, 11, 12])]
    plain, rounded = D.collate_flat(examples), D.collate_flat(examples, multiple=16, pad_id=0)
    assert rounded["input_ids"].shape == (1, 16) and rounded["position_ids"][0, 8:].tolist() == list(range(8))
    assert D.answer_tokens(rounded) == D.answer_tokens(plain) == 5  # the filler is never trained on
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    with torch.no_grad():
        a = model(input_ids=plain["input_ids"], position_ids=plain["position_ids"]).logits[0]
        b = model(input_ids=rounded["input_ids"], position_ids=rounded["position_ids"]).logits[0, :8]
    assert torch.allclose(a, b, atol=1e-5)


def test_compiled_rows_take_few_lengths_and_grow_by_under_an_eighth():
    lengths = {}
    for tokens in range(1, 8193):
        multiple = D.row_multiple(tokens)
        assert multiple % 64 == 0
        rounded = -(-tokens // multiple) * multiple
        assert rounded - tokens < max(64, tokens / 8)
        lengths[rounded] = True
    # QA rows at batch 16 (about 1,500-2,700 tokens) meet 8 lengths, not the 19 of a 64-token multiple
    assert len({-(-t // D.row_multiple(t)) * D.row_multiple(t) for t in range(1500, 2700)}) == 8
    assert len(lengths) < 8192 // 64 / 2


def test_cpu_passes_keep_order_and_budget():
    examples = [D.Example(input_ids=[1] * n, labels=[1] * n) for n in (100, 300, 200, 700, 50, 60)]
    rows = D.rows_within(examples, 512)
    assert [[len(e.input_ids) for e in row] for row in rows] == [[100, 300], [200], [700], [50, 60]]
    assert [e for row in rows for e in row] == examples

"""The checks answer with the LoRA adapter merged into the weights: same answers, weights given back."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunewiz.evalsets import GENERAL_PROMPTS
from tunewiz.training.recall import RecallChecker


def test_merged_answers_match_and_the_weights_come_back(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    records = [{"split": "recall", "id": str(i), "question": f"What is the code of item {i}?",
                "answer": f"The code of item {i} is {i * 37 % 101}."} for i in range(6)]
    records += [{"split": "general", "question": prompt} for prompt in GENERAL_PROMPTS[:3]]
    checker = RecallChecker(records, tokenizer, "chatml", "", 24, [r["answer"] for r in records[:6]])
    questions = checker.sets["trained"] + checker.sets["general"]
    before = {k: v.clone() for k, v in model.state_dict().items()}

    plain = checker.answers(model, questions, "cpu")
    checker.merge_lora = True
    merges = []
    real_merge = model.merge_adapter
    model.merge_adapter = lambda *a, **k: (merges.append(1), real_merge(*a, **k))[1]
    merged = checker.answers(model, questions, "cpu")
    assert merges == [1]  # the answers above came from merged weights

    assert merged == plain and any(plain)  # the adapter (random, not zero) was applied both times
    after = model.state_dict()
    assert max(float((after[k] - v).abs().max()) for k, v in before.items()) < 1e-5
    assert not any(getattr(m, "merged", False) for m in model.modules())  # unmerged: training goes on with LoRA
    checker.merge_lora = False
    with model.disable_adapter():
        assert checker.answers(model, questions, "cpu") != plain  # so the adapter did change the answers


def test_each_row_stops_at_its_own_limit_and_keeps_its_greedy_answer(tiny_model):
    from tunewiz.training.recall import GENERAL_TOKENS, Question, row_limits

    done = row_limits(4, [3, 5])
    assert done(torch.zeros(2, 4 + 3, dtype=torch.long), None).tolist() == [True, False]
    assert done(torch.zeros(2, 4 + 5, dtype=torch.long), None).tolist() == [True, True]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    questions = [Question("What is the code?", "It is 7.", "a"),
                 Question("Tell me the whole story of the harbour town?", " ".join(["word"] * 30), "b"),
                 Question(GENERAL_PROMPTS[0], "", "")]
    checker = RecallChecker([], tokenizer, "chatml", "", 48, [])
    limits = checker.answer_limits(questions)
    assert limits[0] < 12 and limits[1] > 30 and limits[2] == GENERAL_TOKENS
    outputs = []
    real_generate = model.generate
    model.generate = lambda **kw: outputs.append(real_generate(**kw)) or outputs[-1]
    answers = checker.answers(model, questions, "cpu")
    # The same rows, every one decoded to the longest limit: each row's first tokens are the same (a row's
    # greedy tokens never depend on how long it or the others go on), and only the longest row ran on.
    checker.answer_limits = lambda qs: [max(limits)] * len(qs)
    longer = checker.answers(model, questions, "cpu")
    width = outputs[0].shape[1] - max(limits)
    for row, limit in enumerate(limits):
        assert outputs[0][row, width:width + limit].tolist() == outputs[1][row, width:width + limit].tolist()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else checker.stop_ids[0]
    assert outputs[0][2, width + GENERAL_TOKENS:].tolist() == [pad] * (max(limits) - GENERAL_TOKENS)
    assert answers[1] == longer[1]  # the longest row: the same answer

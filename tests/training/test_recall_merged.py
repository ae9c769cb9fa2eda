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

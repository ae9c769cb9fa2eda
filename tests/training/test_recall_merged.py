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
    """Rows leave the batch as they end; each row's tokens are still what transformers' generate() picks
    for that prompt alone, up to the row's own limit or its stop token."""
    from tunewiz.templates import render_prompt
    from tunewiz.training.greedy import greedy_decode
    from tunewiz.training.recall import GENERAL_TOKENS, Question

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    with torch.no_grad():  # weights far from their small initial values: answers that vary with the prompt
        for weight in model.parameters():
            weight.normal_(0, 0.3)
    questions = [Question("What is the code?", "It is 7.", "a"),
                 Question("Tell me the whole story of the harbour town?", " ".join(["word"] * 30), "b"),
                 Question(GENERAL_PROMPTS[0], "", ""), Question("Hi?", "Hello there.", "c")]
    checker = RecallChecker([], tokenizer, "chatml", "", 48, [])
    limits = checker.answer_limits(questions)
    assert limits[0] < 12 and limits[1] > 30 and limits[2] == GENERAL_TOKENS
    prompts = [tokenizer(render_prompt("chatml", q.text, "", tokenizer))["input_ids"] for q in questions]
    alone = []
    for ids, limit in zip(prompts, limits):
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=limit, eos_token_id=checker.stop_ids,
                             pad_token_id=checker.stop_ids[0])
        tokens = out[0, len(ids):].tolist()
        alone.append(tokens[:next((i for i, t in enumerate(tokens) if t in checker.stop_ids), len(tokens))])
    # One more stop token: one that only the second row picks (past its first two tokens), so that row
    # ends early while the others go on.
    stop = next(t for t in alone[1][2:] if not any(t in other for other in alone[:1] + alone[2:]))
    together = greedy_decode(model, prompts, limits, checker.stop_ids + [stop], checker.stop_ids[0], "cpu")
    assert together[0] == alone[0] and together[2] == alone[2] and together[3] == alone[3]
    assert together[1] == alone[1][:alone[1].index(stop)]
    assert [len(t) for t in together] == [len(t) for t in alone][:1] + [alone[1].index(stop)] + [len(t) for t in alone][2:]
    assert len(alone[1]) == limits[1] and len(alone[2]) == GENERAL_TOKENS  # the random model never stops itself
    assert checker.answers(model, questions, "cpu")[3] == tokenizer.decode(alone[3], skip_special_tokens=True).strip()

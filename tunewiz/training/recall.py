"""The checks at every checkpoint: does the model recall what it was taught, and does it still talk?

The run folder's dataset.jsonl holds, beside the train and validation samples, the
questions to check (written by launch.prepare_run and never trained on):
- `recall`: a seeded sample of trained pairs, asked as they were trained;
- `reworded`: questions asking for the same facts in other words (the pair's answer is the reference);
- `general`: everyday prompts, whose answers are compared with the base model's.

Answers are greedy and batched, short (the reference's length plus a margin), rendered
with the training template. Step 0 is the base model (the LoRA adapter starts at zero),
so every run also shows what the base model knew. One `recall` line per check goes into
metrics.jsonl (see RecallResult.record).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tunewiz.scoring import check_general, is_recalled
from tunewiz.templates import cut_at_stops, end_of_turn, render_prompt, stop_token_ids

BATCH = 16
ANSWER_MARGIN = 12
"""Tokens allowed past the reference's length (a recalled fact rarely needs more)."""
MISSES_KEPT = 20


@dataclass
class Question:
    text: str
    reference: str
    pair_id: str
    system: str = ""


class RecallChecker:
    def __init__(self, records: list[dict[str, Any]], tokenizer: Any, family: str, system_prompt: str,
                 answer_tokens: int, training_answers: list[str]):
        self.tokenizer, self.family, self.system = tokenizer, family, system_prompt
        self.answer_tokens = answer_tokens
        self.training_answers = training_answers
        self.sets: dict[str, list[Question]] = {"trained": [], "reworded": [], "general": []}
        names = {"recall": "trained", "reworded": "reworded", "general": "general"}
        for record in records:
            name = names.get(record.get("split", ""))
            if name:
                self.sets[name].append(Question(record["question"], record.get("answer", ""),
                                                record.get("pair_id") or record.get("id", ""),
                                                record.get("system", "")))
        self.base_general: list[str] | None = None
        self.stop_ids = stop_token_ids(family, tokenizer)
        self.stops = [end_of_turn(family, tokenizer)]

    @property
    def empty(self) -> bool:
        return not any(self.sets.values())

    def check(self, model: Any, step: int, device: Any) -> dict[str, Any]:
        """Answer every question with `model` and score them: one metrics record."""
        started = time.perf_counter()
        record: dict[str, Any] = {"type": "recall", "step": step}
        misses: list[dict[str, str]] = []
        for name in ("trained", "reworded"):
            questions = self.sets[name]
            if not questions:
                continue
            answers = self.answers(model, questions, device)
            hits = 0
            for question, answer in zip(questions, answers):
                if is_recalled(answer, question.text, question.reference):
                    hits += 1
                elif len(misses) < MISSES_KEPT:
                    misses.append({"set": name, "question": question.text, "reference": question.reference,
                                   "answer": answer[:300], "pair_id": question.pair_id})
            record[name] = {"recalled": hits, "total": len(questions)}
        if self.sets["general"]:
            prompts = [q.text for q in self.sets["general"]]
            answers = self.answers(model, self.sets["general"], device, fixed=self.answer_tokens)
            if self.base_general is None:  # step 0: the base model's own answers
                self.base_general = answers
                record["general_answers"] = answers
            check = check_general(prompts, answers, self.base_general, self.training_answers)
            record["general"] = {"broken": check.broken, "total": check.total, "changed": check.changed,
                                 "examples": check.examples[:3]}
        record["misses"] = misses
        record["seconds"] = round(time.perf_counter() - started, 2)
        record["time"] = round(time.time(), 3)
        return record

    def answers(self, model: Any, questions: list[Question], device: Any, fixed: int | None = None) -> list[str]:
        """Greedy answers, in batches of similar length (left padding)."""
        import torch

        tokenizer = self.tokenizer
        prompts = [render_prompt(self.family, q.text, q.system or self.system, tokenizer) for q in questions]
        limits = [fixed or min(self.answer_tokens, len(tokenizer(q.reference, add_special_tokens=False)["input_ids"])
                               + ANSWER_MARGIN) for q in questions]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(order), BATCH):
                chunk = order[start:start + BATCH]
                encoded = [tokenizer(prompts[i], add_special_tokens=True)["input_ids"] for i in chunk]
                width = max(len(ids) for ids in encoded)
                input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded], device=device)
                mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
                with torch.no_grad():
                    generated = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False,
                                               max_new_tokens=max(limits[i] for i in chunk), use_cache=True,
                                               eos_token_id=self.stop_ids, pad_token_id=pad_id)
                for row, index in enumerate(chunk):
                    text = tokenizer.decode(generated[row, width:], skip_special_tokens=True)
                    out[index] = cut_at_stops(text, self.stops)
        finally:
            tokenizer.padding_side = side
            if was_training:
                model.train()
        return out

"""Scoring a model's answers: was a fact recalled, did an everyday answer break.

Pure text functions (no torch), shared by the training process (which scores every
saved checkpoint), the checkpoint ranking and the benchmarks, so all of them judge
an answer the same way.

A fact counts as recalled when the answer holds the reference's *key tokens* (the
content words of the reference that the question does not already say: for "Who
founded the Velmora Institute?" / "Dr. Ilse Marrow founded the Velmora Institute."
they are dr, ilse, marrow) or reaches a token-F1 of RECALL_F1 with the reference.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

RECALL_F1 = 0.8
COPY_F1 = 0.6
"""An everyday answer this close to a training answer is that answer copied."""
TEMPLATE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|eot_id|>", "[INST]", "[/INST]",
                    "### Instruction:", "### Response:")

STOPWORDS = frozenset("""
a an the of in on at to for from by with and or but is are was were be been being am do does did
it its this that these those there here as into than then so such not no yes what who whom whose which
when where why how i you he she we they me him her us them my your his our their
""".split())

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-case word tokens; punctuation and spacing never matter."""
    return _TOKEN.findall(text.lower())


def token_f1(answer: str, reference: str) -> float:
    """SQuAD-style token F1 (bag of words) between an answer and a reference."""
    got, want = tokens(answer), tokens(reference)
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def key_tokens(question: str, reference: str) -> list[str]:
    """The tokens that carry the reference's fact: its names and numbers the question does not say
    (capitalised words past a sentence's start, words with digits); when it has none, every
    content word the question does not say."""
    asked = set(tokens(question))
    distinctive: list[str] = []
    sentence_start = True
    for word in reference.split():
        if any(ch.isdigit() for ch in word) or (word[:1].isupper() and not sentence_start):
            distinctive += [t for t in tokens(word) if t not in asked and t not in distinctive]
        sentence_start = word.endswith((".", "!", "?", ":"))
    if distinctive:
        return distinctive
    content: list[str] = []
    for token in tokens(reference):
        if token not in asked and token not in STOPWORDS and token not in content:
            content.append(token)
    return content


def is_recalled(answer: str, question: str, reference: str) -> bool:
    """Whether an answer states the reference's fact: its key tokens are all there, or the words
    that go beyond the question reach a token-F1 of RECALL_F1 with the reference's (so an answer
    that only echoes the question never counts)."""
    key = key_tokens(question, reference)
    said = set(tokens(answer))
    if key and all(token in said for token in key):
        return True
    asked = set(tokens(question))
    beyond = " ".join(t for t in tokens(answer) if t not in asked)
    wanted = " ".join(t for t in tokens(reference) if t not in asked)
    return bool(wanted) and token_f1(beyond, wanted) >= RECALL_F1


# ---------------------------------------------------------------- everyday answers

def repeats_itself(answer: str) -> bool:
    """An answer stuck in a loop: one 3-word phrase four times, or few distinct words in a long answer."""
    words = tokens(answer)
    if len(words) < 12:
        return False
    trigrams = Counter(zip(words, words[1:], words[2:]))
    if trigrams and trigrams.most_common(1)[0][1] >= 4:
        return True
    return len(words) >= 24 and len(set(words)) / len(words) < 0.3


def broken_reasons(answer: str, training_answers: Iterable[str] = ()) -> list[str]:
    """Why an everyday answer is broken ([] when it reads as an answer)."""
    reasons = []
    if len(tokens(answer)) < 2:
        reasons.append("empty")
    if repeats_itself(answer):
        reasons.append("repeats itself")
    if any(marker in answer for marker in TEMPLATE_MARKERS):
        reasons.append("template text leaks")
    if any(token_f1(answer, taught) >= COPY_F1 for taught in training_answers):
        reasons.append("copies a training answer")
    return reasons


@dataclass
class GeneralCheck:
    """How a model answered the everyday prompts, beside the base model's answers."""

    total: int = 0
    broken: int = 0
    """Prompts whose answer broke where the base model's did not."""
    changed: float = 0.0
    """Mean of 1 - token-F1 against the base model's answers (0: the same answers)."""
    examples: list[dict[str, str]] = field(default_factory=list)
    """The broken ones: prompt, answer and why."""


def check_general(prompts: list[str], answers: list[str], base_answers: list[str],
                  training_answers: list[str]) -> GeneralCheck:
    check = GeneralCheck(total=len(prompts))
    changes = []
    for prompt, answer, base in zip(prompts, answers, base_answers):
        base_broken = set(broken_reasons(base, training_answers))
        new = [reason for reason in broken_reasons(answer, training_answers) if reason not in base_broken]
        if new:
            check.broken += 1
            check.examples.append({"prompt": prompt, "answer": answer[:200], "why": ", ".join(new)})
        changes.append(1.0 - token_f1(answer, base))
    check.changed = round(sum(changes) / len(changes), 3) if changes else 0.0
    return check

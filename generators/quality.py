"""Which generated pairs are kept: no empty, too short, question-echoing or duplicate pairs, and
none that fails a content check (tunewiz.generators.checks: those are kept as rejected)."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from tunewiz.dedup import DuplicateIndex, normalize
from tunewiz.generators.checks import CHECK_REASONS

MIN_QUESTION_CHARS = 8
MIN_ANSWER_CHARS = 3

# The reasons a pair is dropped, as counted in events and summaries.
DROP_REASONS = ("empty", "too_short", "echoes_question", "duplicate", "near_duplicate", "judge_low",
                *CHECK_REASONS)


def shape_problem(question: str, answer: str) -> str | None:
    """Why a pair is unusable on its face (a reason from DROP_REASONS), or None."""
    q, a = normalize(question), normalize(answer)
    if not q or not a:
        return "empty"
    if len(q) < MIN_QUESTION_CHARS or len(a) < MIN_ANSWER_CHARS:
        return "too_short"
    # The answer is the question again, or the question with a word or two added.
    if a == q or (a.startswith(q) and len(a[len(q):].split()) < 3):
        return "echoes_question"
    return None


class QualityGate:
    """Counts drops and remembers every kept pair, so later ones are checked against it.

    Seeded with the project's existing pairs: a generated pair that repeats one of
    them, exactly or nearly, is dropped.
    """

    def __init__(self, existing: Iterable[tuple[str, str]] = ()):
        self.index = DuplicateIndex(existing)
        self.dropped: Counter[str] = Counter()

    def duplicate_problem(self, question: str, answer: str) -> str | None:
        if self.index.is_exact(question, answer):
            return "duplicate"
        if self.index.is_near(question):
            return "near_duplicate"
        return None

    def screen(self, question: str, answer: str) -> str | None:
        """The drop reason of a new pair, or None when it may be kept (it is not remembered yet)."""
        return shape_problem(question, answer) or self.duplicate_problem(question, answer)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def keep(self, question: str, answer: str, checked: bool = False) -> bool:
        """Remember a pair as kept unless a pair kept meanwhile makes it a duplicate.

        `checked`: `screen` passed it and nothing was kept since (no await between
        the two), so the duplicate check (the costly part) need not run again.
        """
        reason = None if checked else self.duplicate_problem(question, answer)
        if reason:
            self.drop(reason)
            return False
        self.index.add(question, answer)
        return True

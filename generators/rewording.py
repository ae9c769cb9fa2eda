"""Rewordings from the project's generator: each trained question asked for the same fact in new words.

The recall check of a run asks a pair's stored rewordings, or else one made by rules
(tunewiz.evalsets.rule_rewording). Rule rewordings keep the question's own words, so they
say more facts are recalled than questions in new words get (docs/train.md: 90-100 % by the
rules where hand-written rewordings got 55-70 %). A model rewords with other words. Every
reply is checked before it is stored (source "generator", pending review): still a question
and not the original with cosmetic changes, the original's names and numbers kept, the answer
not given away. What fails a check is dropped and counted by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from tunewiz.dataset import Pair
from tunewiz.evalsets import Rewording, RewordingStore, is_good_rewording, live_rewordings
from tunewiz.generators import prompts
from tunewiz.generators.checks import content_words
from tunewiz.generators.providers import open_endpoint
from tunewiz.generators.requester import ChunkFailed, Requester

DROP_REASONS = ("not_a_rewording", "lost_names", "gives_answer", "request_failed")
_NAME = re.compile(r"\b(?:[A-Z][\w'-]*|\w*\d[\w.,-]*)")


@dataclass
class RewordingSummary:
    asked: int = 0
    """Pairs asked about."""
    added: int = 0
    dropped: Counter = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    notices: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"Asked the generator to reword {self.asked} question{'s' if self.asked != 1 else ''}: "
               f"{self.added} rewording{'s' if self.added != 1 else ''} added "
               f"({self.requests} requests, {self.retries} retries)."]
        if self.dropped:
            out.append("Dropped: " + ", ".join(f"{n} {reason.replace('_', ' ')}"
                                               for reason, n in self.dropped.most_common()))
        return out + self.notices


def names_in(question: str) -> set[str]:
    """Names and numbers of a question (capitalised words after the first, anything with a digit)."""
    words = _NAME.findall(question)
    first = question.split()[0] if question.split() else ""
    return {w.strip(".,;:?!").lower() for w in words if w != first or any(c.isdigit() for c in w)} - {""}


def rewording_problem(candidate: str, pair: Pair) -> str | None:
    """Why a generated rewording cannot check this pair's fact (a DROP_REASONS entry), or None."""
    if not is_good_rewording(candidate, pair.question):
        return "not_a_rewording"
    said = candidate.lower()
    if any(name not in said for name in names_in(pair.question)):
        return "lost_names"
    # The answer's own words (not the question's): a rewording that holds most of them answers itself.
    answer_only = content_words(pair.answer) - content_words(pair.question)
    if answer_only and len(answer_only & content_words(candidate)) * 2 >= len(answer_only):
        return "gives_answer"
    return None


def pairs_to_reword(store: RewordingStore, pairs: list[Pair]) -> list[Pair]:
    """Pairs asked alone (no conversation) that have no live rewording other than a rule one."""
    by_id = {p.id: p for p in pairs}
    covered = {r.pair_id for r in live_rewordings(store, by_id) if r.source != "rules"}
    return [p for p in pairs if p.id not in covered and not p.history]


async def areword_pairs(project, store: RewordingStore, pairs: list[Pair],
                        on_progress: Callable[[int, int], None] | None = None) -> RewordingSummary:
    """One generated rewording for each of `pairs`, checked and stored as it comes (see the module
    docstring); `on_progress(done, total)` after each. Raises TunewizError for what no retry fixes
    (a bad key, an unknown model)."""
    g = project.config.generator
    summary = RewordingSummary(asked=len(pairs))
    requester = Requester(g, summary, summary.notices.append)
    limit = asyncio.Semaphore(max(1, g.concurrency))
    done = 0

    async def one(pair: Pair) -> None:
        nonlocal done
        async with limit:
            try:
                text = await requester.ask(prompts.reword_messages(pair.question), prompts.REWORD_SCHEMA,
                                           prompts.REWORD_MAX_TOKENS, prompts.parse_reworded)
            except ChunkFailed:
                summary.dropped["request_failed"] += 1
            else:
                problem = rewording_problem(text, pair)
                if problem:
                    summary.dropped[problem] += 1
                else:
                    store.add([Rewording(pair_id=pair.id, question=text, made_from=pair.question,
                                         source="generator")])
                    summary.added += 1
            done += 1
            if on_progress is not None:
                on_progress(done, len(pairs))

    with contextlib.ExitStack() as stack:
        requester.connect(await asyncio.to_thread(stack.enter_context, open_endpoint(project)))
        try:
            await asyncio.gather(*(one(pair) for pair in pairs))
        finally:
            await requester.close()
            await asyncio.to_thread(stack.close)  # stopping the embedded server blocks for a moment
    summary.notices += store.notices
    return summary


def reword_pairs(project, store: RewordingStore, pairs: list[Pair],
                 on_progress: Callable[[int, int], None] | None = None) -> RewordingSummary:
    """The synchronous form of `areword_pairs`."""
    return asyncio.run(areword_pairs(project, store, pairs, on_progress))

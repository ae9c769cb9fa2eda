"""Rewordings from the project's generator: each trained question asked for the same fact in new words.

The recall check of a run asks a pair's stored rewordings, or else one made by rules
(tunewiz.evalsets.rule_rewording). Rule rewordings keep the question's own words, so they
say more facts are recalled than questions in new words get (docs/train.md: 90-100 % by the
rules where hand-written rewordings got 55-70 %). A model rewords with other words. Every
reply is checked before it is stored (source "generator", pending review): still a question
and not the original with cosmetic changes, the original's names and numbers kept, the answer
not given away. What fails a check is dropped and counted by reason, and the question asked again
(up to ASKS_PER_QUESTION replies).

The same request makes rewordings that train (use "train": each one more question for its pair's
answer, never asked by the check); a reply that repeats one of the pair's rewordings of the other use
is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from tunewiz.dataset import Pair
from tunewiz.dedup import normalize
from tunewiz.evalsets import Rewording, RewordingStore, is_good_rewording, live_rewordings
from tunewiz.generators import prompts
from tunewiz.generators.checks import STOPWORDS, content_words, numbers
from tunewiz.generators.providers import open_endpoint
from tunewiz.generators.requester import ChunkFailed, Requester
from tunewiz.scoring import tokens
from tunewiz.words import counted

DROP_REASONS = ("not_a_rewording", "copied_example", "other_question", "lost_names", "gives_answer",
                "already_used", "request_failed")
"""already_used: the same words as one of the pair's rewordings of the other use (a question that trains
is never the one the check asks)."""
ASKS_PER_QUESTION = 4
"""Replies asked for one question until one passes the checks: a capable model's first one does. The
embedded SmolLM2-135M kept 4-5 of the 40 benchmark questions in one pass, and 4 asked up to 4 times each
at the default temperature (docs/train.md)."""
_WORD = re.compile(r"[\w'’-]+")
_POSSESSIVE = re.compile(r"['’]s?$")


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
    failures: Counter = field(default_factory=Counter)
    """Why requests failed (the reason after the last retry), counted."""

    @property
    def all_failed(self) -> bool:
        return bool(self.asked) and self.dropped["request_failed"] == self.asked

    def lines(self) -> list[str]:
        out = [f"Asked the generator to reword {counted(self.asked, 'question')}: "
               f"{counted(self.added, 'rewording')} added "
               f"({self.requests} requests, {self.retries} retries)."]
        if self.dropped:
            out.append(f"Dropped replies (a question is asked up to {ASKS_PER_QUESTION} times): "
                       + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in self.dropped.most_common()))
        out += [f"  request failed ({n}): {reason}" for reason, n in self.failures.most_common(3)]
        return out + self.notices


def _words(text: str) -> list[str]:
    """The words of a text with possessives cut ("Velmora's" is "Velmora")."""
    return [_POSSESSIVE.sub("", word) for word in _WORD.findall(text)]


def names_in(text: str, first_word: bool = False) -> set[str]:
    """Names of a text, lower-cased: capitalised words that are not stopwords (the first word only
    with `first_word`: a question starts with a capital by grammar). Numbers are `numbers`' job."""
    words = _words(text)
    return {w.lower() for i, w in enumerate(words) if (i or first_word) and w[:1].isupper()
            and w.lower() not in STOPWORDS}


def rewording_problem(candidate: str, pair: Pair) -> str | None:
    """Why a generated rewording cannot check this pair's fact (a DROP_REASONS entry), or None."""
    if not is_good_rewording(candidate, pair.question):
        return "not_a_rewording"
    example_question, example_rewording = map(normalize, prompts.REWORD_EXAMPLE)
    if normalize(candidate) == example_rewording and normalize(pair.question) != example_question:
        return "copied_example"
    said = {w.lower() for w in _words(candidate)}
    names = names_in(pair.question)
    if (names_in(prompts.REWORD_EXAMPLE[0]) - names) & said:  # the example's subject in another question
        return "copied_example"
    if names - said or numbers(pair.question) - numbers(candidate):
        return "lost_names"
    if not names and not numbers(pair.question) and not content_words(pair.question) & content_words(candidate):
        return "other_question"  # nothing of the original's subject is left to ask about
    # The answer's own names and numbers are its key span: a rewording holding one answers itself; of its
    # plain words, a rewording may share one (a synonym of the question's verb), not two and most.
    answer_names = names_in(pair.answer, first_word=True) - names
    answer_numbers = numbers(pair.answer) - numbers(pair.question)
    if answer_names & said or answer_numbers & numbers(candidate):
        return "gives_answer"
    answer_only = content_words(pair.answer) - content_words(pair.question)
    given = answer_only & content_words(candidate)
    if len(given) >= 2 and len(given) * 2 >= len(answer_only):
        return "gives_answer"
    return None


def pairs_to_reword(store: RewordingStore, pairs: list[Pair], use: str = "check") -> list[Pair]:
    """Pairs asked alone (no conversation) that have no live rewording of `use` other than a rule one."""
    by_id = {p.id: p for p in pairs}
    covered = {r.pair_id for r in live_rewordings(store, by_id, use) if r.source != "rules"}
    return [p for p in pairs if p.id not in covered and not p.history]


async def areword_pairs(project, store: RewordingStore, pairs: list[Pair],
                        on_progress: Callable[[int, int], None] | None = None,
                        use: str = "check") -> RewordingSummary:
    """One generated rewording of `use` for each of `pairs`, checked and stored as it comes (see the
    module docstring), asking again up to ASKS_PER_QUESTION times while the replies fail the checks;
    `on_progress(done, total)` after each. Raises TunewizError for what no retry fixes (a bad key, an
    unknown model)."""
    by_id = {p.id: p for p in pairs}
    other_use = {(r.pair_id, tuple(tokens(r.question))) for r in live_rewordings(store, by_id)
                 if r.use != use}
    g = project.config.generator
    summary = RewordingSummary(asked=len(pairs))
    requester = Requester(g, summary, summary.notices.append)
    limit = asyncio.Semaphore(max(1, g.concurrency))
    done = 0

    async def one(pair: Pair) -> None:
        nonlocal done
        async with limit:
            for _ in range(ASKS_PER_QUESTION):
                try:
                    text = await requester.ask(prompts.reword_messages(pair.question), prompts.REWORD_SCHEMA,
                                               prompts.REWORD_MAX_TOKENS, prompts.parse_reworded)
                except ChunkFailed as exc:
                    summary.dropped["request_failed"] += 1
                    summary.failures[str(exc)] += 1
                    break  # retried already: asking again would wait the same way
                problem = rewording_problem(text, pair)
                if problem is None and (pair.id, tuple(tokens(text))) in other_use:
                    problem = "already_used"
                if not problem:
                    store.add([Rewording(pair_id=pair.id, question=text, made_from=pair.question,
                                         source="generator", use=use)])
                    summary.added += 1
                    break
                summary.dropped[problem] += 1
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
                 on_progress: Callable[[int, int], None] | None = None, use: str = "check") -> RewordingSummary:
    """The synchronous form of `areword_pairs`."""
    return asyncio.run(areword_pairs(project, store, pairs, on_progress, use))

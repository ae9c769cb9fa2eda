"""The generation runner: work items in, checked pairs appended to the project as they arrive.

One work item is a document chunk or one request about a topic (one subtopic).
The Planner (here) says what to ask; `concurrency` workers take items from a shared
iterator and ask through the Requester (requester.py: retries with backoff, honouring
Retry-After; malformed replies asked again at once); the pairs pass the quality gate
and the content checks and go to the Committer (committer.py: appended to pairs.jsonl,
then the chunk marked done in generation.jsonl, grouped and off the event loop). While
pairs are missing, rounds of asking again follow within the request budget. A re-run
skips the chunks already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from tunewiz.dataset import Pair, PairStore
from tunewiz.errors import TunewizError
from tunewiz.generators import prompts
from tunewiz.generators.checks import CHECK_REASONS, FAILS_BECAUSE, content_problem
from tunewiz.generators.chunking import split_text
from tunewiz.generators.committer import Committer, Outcome
from tunewiz.generators.documents import find_documents, read_document, source_name
from tunewiz.generators.journal import GenerationJournal, journal_path
from tunewiz.generators.providers import open_endpoint
from tunewiz.generators.quality import QualityGate
from tunewiz.generators.requester import STRUCTURED_MODES, ChunkFailed, Requester, retry_after_s
from tunewiz.words import counted

__all__ = ["GenerationEvent", "GenerationSummary", "STRUCTURED_MODES", "agenerate_pairs", "generate_pairs",
           "retry_after_s"]

MAX_SUBTOPICS = 50
MAX_ROUNDS = 5
"""Rounds of asking again (a topic, or every document chunk) while pairs are missing."""
AUTO_BUDGET_FACTOR = 3
"""request_budget = 0: this many requests for each one the pairs need."""
STOP_POLL_S = 0.1


# ---------------------------------------------------------------- what callers see

@dataclass
class GenerationSummary:
    """The outcome of one run."""

    chunks_total: int = 0
    chunks_done: int = 0
    """Done, including those done by earlier runs (`chunks_resumed`)."""
    chunks_failed: int = 0
    unit: str = "chunk"
    """What a work item is called: a document "chunk", or a "topic request" (one subtopic)."""
    chunks_resumed: int = 0
    pairs_added: int = 0
    """Pairs that passed every check (pending review)."""
    pairs_rejected: int = 0
    """Pairs a content check rejected, stored as rejected with the reason (Review can rescue them)."""
    pairs_in_project: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    judge_errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    """Estimated cost in dollars; None when the price is unknown."""
    elapsed_s: float = 0.0
    stopped: bool = False
    """Stopped early (the stop event, Ctrl-C); a re-run goes on where it stopped."""
    wanted: int = 0
    """generator.num_pairs, and how many of them the project holds from this source (`kept`)."""
    kept: int = 0
    budget: int = 0
    """Requests for pairs this run could send (generator.request_budget, or its automatic value)."""
    budget_spent: bool = False
    rounds: int = 0
    """Rounds of asking (every chunk, or the topic) this run went through, the first one included."""
    failures: dict[str, str] = field(default_factory=dict)
    """Chunk key -> reason, for the chunks that failed in this run."""
    notices: list[str] = field(default_factory=list)
    """What the pair store did to keep earlier data safe (a torn last line set aside), and documents
    left out because they could not be read."""

    @property
    def chunks_left(self) -> int:
        return max(0, self.chunks_total - self.chunks_done - self.chunks_failed)

    @property
    def pairs_per_min(self) -> float:
        return self.pairs_added * 60.0 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        """A human summary, a few lines."""
        head = "Stopped" if self.stopped else "Finished"
        out = [f"{head}: {counted(self.pairs_added, 'pair')} added in {self.elapsed_s:.1f} s "
               f"({self.pairs_per_min:.1f} pairs/min); the project has {counted(self.pairs_in_project, 'pair')}.",
               f"{self.unit.capitalize()}s: {self.chunks_done} done ({self.chunks_resumed} from earlier runs), "
               f"{self.chunks_failed} failed, {self.chunks_left} left of {self.chunks_total}.",
               f"Requests: {self.requests} ({self.retries} retries); tokens in/out: "
               f"{self.tokens_in}/{self.tokens_out}; cost: "
               + ("unknown (set generator.price_in_per_mtok and price_out_per_mtok)"
                  if self.cost is None else f"${self.cost:.4f}")]
        out.extend(f"Note: {notice}" for notice in self.notices)
        if self.dropped:
            out.append("Dropped: " + ", ".join(f"{n} {reason.replace('_', ' ')}"
                                               for reason, n in sorted(self.dropped.items())))
        if self.pairs_rejected:
            out.append(f"{counted(self.pairs_rejected, 'pair')} failed a content check and were kept as rejected, with the "
                       "reason (Review: status:rejected).")
        checked = sum(n for reason, n in self.dropped.items() if reason in CHECK_REASONS)
        if checked and checked >= self.pairs_added:
            # The commonest reason, and the next one when it holds a real share of the drops too.
            common = Counter({r: n for r, n in self.dropped.items() if r in CHECK_REASONS}).most_common(2)
            top = [reason for i, (reason, n) in enumerate(common) if i == 0 or 4 * n >= checked]
            bar = [setting for reason, setting in (("unsupported", "generator.min_support lowers the bar"),
                                                   ("off_topic", "generator.min_question_support 0 turns the "
                                                                 "topic check off")) if reason in top]
            out.append(f"Most pairs failed the checks: the model {' and '.join(FAILS_BECAUSE[r] for r in top)}. "
                       "A stronger model keeps more (generator.provider and generator.model, or "
                       "generator.embedded_gguf)" + "".join(f"; {b}" for b in bar) + ".")
        if self.judge_errors:
            out.append(f"The judge gave no usable score for {self.judge_errors} pairs (kept unscored).")
        for key, reason in list(self.failures.items())[:10]:
            out.append(f"  failed {key}: {reason}")
        if len(self.failures) > 10:
            out.append(f"  ... and {len(self.failures) - 10} more failed chunks (see data/generation.jsonl)")
        if self.budget_spent and self.kept < self.wanted:
            out.append(f"The request budget is spent ({self.budget} requests for pairs) with {self.kept} of the "
                       f"{self.wanted} pairs wanted (generator.num_pairs) kept: raise generator.request_budget, "
                       "or use a stronger model, which keeps more of what it writes; `tunewiz generate` again "
                       "goes on with a new budget.")
        elif self.wanted and self.kept < self.wanted and not self.stopped:
            out.append(f"{self.kept} of the {self.wanted} pairs wanted (generator.num_pairs) are kept after "
                       f"{self.rounds} rounds of asking (at most {MAX_ROUNDS}; two in a row without a new "
                       "pair end it): a stronger model, more documents or a broader topic give more.")
        if self.chunks_failed or self.stopped:
            out.append("Run `tunewiz generate` again to retry failed chunks and finish the rest.")
        return out


@dataclass
class GenerationEvent:
    """Progress of a run, sent to `on_event` as it goes.

    kind: "started" (the work is planned), "progress" (chunks were committed),
    "message" (a notice in `message`), "finished" (`summary` is set).
    """

    kind: str
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    chunks_left: int
    pairs_added: int
    pairs_per_min: float
    requests: int
    retries: int
    tokens_in: int
    tokens_out: int
    cost: float | None
    dropped: dict[str, int]
    elapsed_s: float
    message: str = ""
    summary: GenerationSummary | None = None
    unit: str = "chunk"
    """GenerationSummary.unit: what chunks_* count."""


# ---------------------------------------------------------------- internals

@dataclass
class WorkItem:
    key: str
    """Identifies the chunk across runs; also the `source` of its pairs."""
    messages: list[dict[str, str]]
    n_pairs: int
    chunk: str = ""
    """The document text the pairs must come from ('' for topic generation)."""
    subject: str = ""
    """Topic generation: the topic and subtopic asked about, which a pair must name something of."""


def _chunk_key(source: str, index: int, text: str) -> str:
    return f"{source}#{index}:{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


_ROUND_SUFFIX = re.compile(r"\+r\d+$")
"""After a chunk's key: the round of asking again (run_documents)."""


def chunk_key_of(source: str) -> str:
    """The key of the chunk a generated pair came from (its source, less the round of asking again)."""
    return _ROUND_SUFFIX.sub("", source)


_CHUNK_SOURCE = re.compile(r"(?P<document>.+)#\d+:[0-9a-f]{8}(?:\+r\d+)?")
"""The source of a pair generated from a document's chunk (see _chunk_key)."""


def _topic_key(topic: str, index: int) -> str:
    return f"topic:{topic}#{index}"


class Planner:
    """What a run asks for: the work items of the documents, of a round of asking them again, of a
    topic; and how many pairs the project already keeps from them."""

    def __init__(self, project, store: PairStore, done_keys: set[str]) -> None:
        self.project, self.g, self.store, self.done_keys = project, project.config.generator, store, done_keys
        self.topic_index = 0
        self.unreadable: list[str] = []
        """Documents left out, each with why (document_items)."""

    def document_items(self) -> list[WorkItem]:
        """The chunks of every readable document; one that cannot be read (an old encoding, a damaged
        PDF) is left out and said in `unreadable`, not the end of the whole run."""
        g = self.g
        items = []
        self.unreadable = []
        for path in find_documents(self.project):
            source = source_name(self.project, path)
            try:
                text = read_document(path)
            except TunewizError as exc:
                self.unreadable.append(str(exc))
                continue
            for index, text in enumerate(split_text(text, g.chunk_chars, g.chunk_overlap)):
                key = _chunk_key(source, index, text)
                items.append(WorkItem(key, prompts.chunk_messages(g, text, g.pairs_per_chunk), g.pairs_per_chunk,
                                      chunk=text))
        if not items:
            raise TunewizError("generator.documents: the documents hold no text"
                               + "".join(f"; {reason}" for reason in self.unreadable[:3]))
        return items

    def again(self, items: list[WorkItem], round_: int) -> list[WorkItem]:
        """Every chunk once more, asked for other questions; a round's items have keys of their own."""
        g = self.g
        return [WorkItem(f"{item.key}+r{round_}", prompts.chunk_messages(g, item.chunk, g.pairs_per_chunk, round_),
                         g.pairs_per_chunk, chunk=item.chunk) for item in items]

    def topic_items(self, topic: str, subtopics: list[str], missing: int) -> Iterator[WorkItem]:
        """Requests for `missing` more pairs about the topic, one subtopic each in turn, skipping those
        done by an earlier run. Lazily: a million pairs must not mean a million prompts in memory."""
        g, asked = self.g, 0
        while asked < missing:
            index = self.topic_index
            key = _topic_key(topic, index)
            if key not in self.done_keys:
                n = min(g.pairs_per_chunk, missing - asked)
                sub = subtopics[index % len(subtopics)] if subtopics else ""
                round_ = index // len(subtopics) if subtopics else index
                asked += n
                yield WorkItem(key, prompts.topic_messages(g, topic, sub, n, round_), n, subject=f"{topic} {sub}")
            self.topic_index += 1

    def outdated(self, items: list[WorkItem]) -> Counter:
        """Pairs kept (not rejected) from document text that is no longer one of `items`' chunks (the
        document was edited or left generator.documents, or chunk_chars changed), by document."""
        keys = {item.key for item in items}
        found: Counter = Counter()
        for pair in self.store:
            match = _CHUNK_SOURCE.fullmatch(pair.source)
            if match and pair.status != "rejected" and chunk_key_of(pair.source) not in keys:
                found[match["document"]] += 1
        return found

    def kept(self, keys: set[str], prefix: str = "") -> int:
        """Pairs the project holds (not rejected) from these work items (a later round's key is `key+rN`)."""
        return sum(1 for p in self.store if p.status != "rejected"
                   and ((chunk_key_of(p.source) in keys) if keys else p.source.startswith(prefix)))


class _Run:
    """One generation run: a Planner says what to ask, workers ask through the Requester and screen
    the pairs, the Committer writes them; the rounds go on until enough pairs are kept."""

    def __init__(self, project, on_event, stop: threading.Event | None):
        self.project = project
        self.g = project.config.generator
        self.on_event = on_event
        self.stop_event = stop
        self.store = PairStore(project.pairs_path)
        self.summary = GenerationSummary()
        self.gate = QualityGate((p.question, p.answer) for p in self.store)
        self.committer = Committer(self.store, GenerationJournal(journal_path(project)), self.summary,
                                   lambda: self.emit("progress"))
        self.done_keys = self.committer.done_keys
        self.planner = Planner(project, self.store, self.done_keys)
        self.requester = Requester(self.g, self.summary, lambda text: self.emit("message", text))
        self.started = time.monotonic()
        self.stopping = False
        self.price: tuple[float, float] | None = None
        self._workers: list[asyncio.Task] = []
        self.budget_used = 0

    # -- events

    def emit(self, kind: str, message: str = "", summary: GenerationSummary | None = None) -> None:
        if self.on_event is None:
            return
        s = self.summary
        s.elapsed_s = time.monotonic() - self.started
        self.on_event(GenerationEvent(
            kind=kind, chunks_total=s.chunks_total, chunks_done=s.chunks_done,
            chunks_failed=s.chunks_failed, chunks_left=s.chunks_left, pairs_added=s.pairs_added,
            pairs_per_min=s.pairs_per_min, requests=s.requests, retries=s.retries,
            tokens_in=s.tokens_in, tokens_out=s.tokens_out, cost=self.cost(),
            dropped=dict(self.gate.dropped), elapsed_s=s.elapsed_s, message=message, summary=summary, unit=s.unit))

    def cost(self) -> float | None:
        if self.price is None:
            return None
        return (self.summary.tokens_in * self.price[0] + self.summary.tokens_out * self.price[1]) / 1e6

    def _known_price(self) -> tuple[float, float] | None:
        g, preset = self.g, self.requester.endpoint.preset
        if g.price_in_per_mtok > 0 or g.price_out_per_mtok > 0:
            return g.price_in_per_mtok, g.price_out_per_mtok
        if preset.price_in_per_mtok is None:
            return None
        # A hosted preset's price is that of its default model only; a local server costs nothing.
        if preset.name in ("openai",) and self.requester.endpoint.model != preset.model:
            return None
        return preset.price_in_per_mtok, preset.price_out_per_mtok

    @property
    def out_of_budget(self) -> bool:
        return self.budget_used >= self.summary.budget > 0

    # -- one work item

    async def work(self, item: WorkItem) -> None:
        schema = prompts.pairs_schema(item.n_pairs, self.g.answer_length)
        max_tokens = prompts.pairs_max_tokens(item.n_pairs, self.g.answer_length)
        try:
            found = await self.requester.ask(item.messages, schema, max_tokens, prompts.parse_pairs)
        except ChunkFailed as exc:
            self.committer.commit(Outcome(item.key, [], str(exc)))
            return
        kept: list[Pair] = []
        for question, answer in found[: item.n_pairs]:
            reason = self.gate.screen(question, answer)
            if reason:
                self.gate.drop(reason)
                continue
            reason, scores = content_problem(question, answer, item.chunk, self.g, item.subject)
            if reason:
                # Kept as rejected with its reason: Review can rescue a pair a check got wrong.
                self.gate.drop(reason)
                kept.append(Pair(question=question, answer=answer, source=item.key, scores=scores,
                                 status="rejected", reason=reason))
                continue
            if self.g.judge:
                score = await self.judge(question, answer)
                if score is not None:
                    if score < self.g.judge_threshold:
                        self.gate.drop("judge_low")
                        continue
                    scores["judge"] = score
            # After the judge's await, other workers may have kept a twin: check again then.
            if self.gate.keep(question, answer, checked=not self.g.judge):
                kept.append(Pair(question=question, answer=answer, source=item.key, scores=scores))
        self.committer.commit(Outcome(item.key, kept))

    async def judge(self, question: str, answer: str) -> int | None:
        try:
            return await self.requester.ask(prompts.judge_messages(question, answer), prompts.JUDGE_SCHEMA,
                                  24, prompts.parse_score, temperature=0.0)
        except ChunkFailed:
            self.summary.judge_errors += 1
            return None

    # -- running a list of work items

    async def run_items(self, items: Iterable[WorkItem]) -> None:
        todo = iter(items)
        writer = self.committer.open()

        async def worker() -> None:
            for item in todo:  # one shared iterator: every item is taken once
                if self.stopping or writer.done():  # stopped, or the disk failed
                    return
                if self.out_of_budget:
                    self.summary.budget_spent = True
                    return
                self.budget_used += 1  # one request for pairs (its retries on errors are max_retries' business)
                await self.work(item)

        self._workers = [asyncio.create_task(worker()) for _ in range(self.g.concurrency)]
        try:
            await asyncio.gather(*self._workers)
        except asyncio.CancelledError:
            if not self.stopping:
                raise
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
            # Write what finished (after a stop too), then let the writer end; a disk error raises here.
            await self.committer.close(writer)

    async def watch_stop(self) -> None:
        while not self.stop_event.is_set():
            await asyncio.sleep(STOP_POLL_S)
        self.stopping = True
        self.summary.stopped = True
        for task in self._workers:
            task.cancel()

    # -- the rounds

    async def run_documents(self, items: list[WorkItem]) -> None:
        """Every chunk once; then, while pairs are missing, every chunk again for new questions (each
        round's items have their own keys, so a resumed run skips what it already did)."""
        g = self.g
        self.committer.journal_recovered(item.key for item in items)
        todo = [item for item in items if item.key not in self.done_keys]
        resumed = len(items) - len(todo)
        self.summary.chunks_total = len(items)
        self.summary.chunks_done = self.summary.chunks_resumed = resumed
        self.emit("started", f"{counted(len(items), 'chunk')}, {resumed} already done")
        await self.run_items(todo)
        keys = {item.key for item in items}
        idle_rounds, self.summary.rounds = 0, 1
        for round_ in range(1, MAX_ROUNDS):
            missing = g.num_pairs - self.planner.kept(keys)
            if missing <= 0 or self.stopping or self.out_of_budget or idle_rounds >= 2:
                break
            again = self.planner.again(items, round_)
            self.committer.journal_recovered(item.key for item in again)
            todo = [item for item in again if item.key not in self.done_keys]
            self.summary.chunks_total += len(again)
            self.summary.chunks_done += len(again) - len(todo)
            self.summary.chunks_resumed += len(again) - len(todo)
            if todo:  # a round an earlier run asked is not asked again: nothing to say
                self.emit("message", f"{counted(missing, 'pair')} still missing: every chunk again "
                                     f"({counted(len(todo), 'request')})")
            self.summary.rounds += 1
            added_before = self.summary.pairs_added
            await self.run_items(todo)
            if todo:  # a round done by an earlier run says nothing about this one
                idle_rounds = idle_rounds + 1 if self.summary.pairs_added == added_before else 0
        self.summary.kept = self.planner.kept(keys)

    async def stoppable(self, work, stopped):
        """`work` (a coroutine), cancelled when the run is stopped; then `stopped` is returned. For what runs
        before the workers exist (the subtopics request), which a stop must not wait out with its retries."""
        if self.stopping:
            work.close()
            return stopped
        task = asyncio.ensure_future(work)
        self._workers = [task]  # watch_stop cancels these
        try:
            return await task
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            return stopped
        finally:
            self._workers = []

    async def subtopics(self, topic: str, count: int) -> list[str]:
        if topic in self.committer.journal.subtopics:
            return self.committer.journal.subtopics[topic]
        k = min(MAX_SUBTOPICS, count)
        try:
            items = await self.requester.ask(prompts.subtopics_messages(self.g, topic, k), prompts.subtopics_schema(k),
                                   k * 30 + 40, prompts.parse_subtopics)
        except ChunkFailed as exc:
            self.emit("message", f"no subtopics ({exc}); asking about the topic as a whole")
            return []
        await asyncio.to_thread(self.committer.journal.append, [{"kind": "subtopics", "topic": topic, "items": items}])
        self.emit("message", f"subtopics: {', '.join(items)}")
        return items

    async def run_topic(self) -> None:
        g = self.g
        self.summary.unit = "topic request"
        topic = g.topic.strip()
        prefix = _topic_key(topic, 0)[:-1]
        subtopics = await self.stoppable(self.subtopics(topic, math.ceil(g.num_pairs / g.pairs_per_chunk)), []) \
            if g.subtopics else []
        done_before = sorted(key for key in self.done_keys if key.startswith(prefix))
        self.committer.journal_recovered(done_before)
        self.summary.chunks_total = self.summary.chunks_done = self.summary.chunks_resumed = len(done_before)
        idle_rounds = 0
        for _round in range(MAX_ROUNDS):
            have = self.planner.kept(set(), prefix)
            missing = g.num_pairs - have
            if missing <= 0 or self.stopping or self.out_of_budget:
                break
            count = math.ceil(missing / g.pairs_per_chunk)
            self.summary.chunks_total += count
            self.emit("started" if _round == 0 else "message",
                      "" if _round == 0 else f"{counted(missing, 'pair')} still missing: {counted(count, 'more request')}")
            added_before = self.summary.pairs_added
            self.summary.rounds += 1
            await self.run_items(self.planner.topic_items(topic, subtopics, missing))
            idle_rounds = idle_rounds + 1 if self.summary.pairs_added == added_before else 0
            if idle_rounds >= 2:
                break
        self.summary.kept = self.planner.kept(set(), prefix)

    async def run(self) -> GenerationSummary:
        g = self.g
        if not g.documents and not g.topic.strip():
            raise TunewizError("nothing to generate from: set generator.topic or generator.documents "
                               "(e.g. `tunewiz generate --topic 'photosynthesis'`)")
        items = self.planner.document_items() if g.documents else None
        for reason in self.planner.unreadable:
            self.emit("message", f"left out (unreadable): {reason}")
        needed = max(len(items or []), math.ceil(g.num_pairs / g.pairs_per_chunk))
        self.summary.wanted = g.num_pairs
        self.summary.budget = g.request_budget or AUTO_BUDGET_FACTOR * needed
        with contextlib.ExitStack() as stack:
            if self.stop_event is None:
                self.stop_event = threading.Event()
            if self.g.provider == "embedded":
                self.emit("message", "starting the embedded llama.cpp server")
            self.requester.connect(await asyncio.to_thread(stack.enter_context, open_endpoint(self.project)))
            self.price = self._known_price()
            watcher = asyncio.create_task(self.watch_stop())
            try:
                if items is not None:
                    await self.run_documents(items)
                else:
                    await self.run_topic()
            finally:
                watcher.cancel()
                await self.requester.close()
                # Stopping the embedded server blocks for a moment: not on the loop.
                await asyncio.to_thread(stack.close)
        self.summary.elapsed_s = time.monotonic() - self.started
        self.summary.cost = self.cost()
        self.summary.dropped = dict(self.gate.dropped)
        self.summary.pairs_in_project = len(self.store)
        self.summary.notices = list(self.store.notices) + [f"left out (unreadable): {reason}"
                                                           for reason in self.planner.unreadable]
        if items is not None:
            self.summary.notices += [
                f"{counted(n, 'pair')} came from text of {document} that is no longer in the documents (edited "
                f"or removed since, or generator.chunk_chars changed): Review shows them with source:{document}; "
                "reject those that no longer hold" for document, n in sorted(self.planner.outdated(items).items())]
        self.emit("finished", summary=self.summary)
        return self.summary


async def agenerate_pairs(project, *, on_event: Callable[[GenerationEvent], None] | None = None,
                          stop: threading.Event | None = None) -> GenerationSummary:
    """Generate pairs for `project` as its [generator] section says; see the module docstring.

    `on_event` is called on the event loop's thread; `stop` ends the run early and
    cleanly (what finished is kept; a re-run goes on). Raises TunewizError for
    problems no retry fixes (no topic, a bad key, an unknown model).
    """
    return await _Run(project, on_event, stop).run()


def generate_pairs(project, *, on_event: Callable[[GenerationEvent], None] | None = None,
                   stop: threading.Event | None = None) -> GenerationSummary:
    """The synchronous form of `agenerate_pairs`; runs its own event loop (usable from a thread)."""
    return asyncio.run(agenerate_pairs(project, on_event=on_event, stop=stop))

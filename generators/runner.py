"""The generation runner: work items in, checked pairs appended to the project as they arrive.

One work item is a document chunk or one request about a topic (one subtopic).
`concurrency` workers take items from a shared iterator; each asks the model,
retrying timeouts, dropped connections, 429 and 5xx with exponential backoff and
jitter (honouring Retry-After) and malformed replies at once; then the pairs pass
the quality gate and are committed: appended to pairs.jsonl, then the chunk is
marked done in generation.jsonl. Commits are grouped (one fsync for all the chunks
that finished meanwhile) and run in a thread, so the event loop never waits on the
disk. A re-run skips the chunks already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import math
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from tunewiz.dataset import Pair, PairStore
from tunewiz.errors import FatalRequestError, TunewizError, redact_urls
from tunewiz.generators import prompts
from tunewiz.generators.checks import CHECK_REASONS, content_problem
from tunewiz.generators.chunking import split_text
from tunewiz.generators.documents import find_documents, read_document, source_name
from tunewiz.generators.journal import GenerationJournal, journal_path
from tunewiz.generators.providers import Endpoint, describe_error, open_endpoint
from tunewiz.generators.quality import QualityGate

# How a JSON reply is asked for, best first. A server that refuses one (HTTP 400/422/500
# naming response_format) gets the next; tolerant parsing reads whatever comes back.
STRUCTURED_MODES = ("json_schema", "json_object_schema", "json_object", "none")

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 300.0
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
    """What the pair store did to keep earlier data safe (a torn last line set aside)."""

    @property
    def chunks_left(self) -> int:
        return max(0, self.chunks_total - self.chunks_done - self.chunks_failed)

    @property
    def pairs_per_min(self) -> float:
        return self.pairs_added * 60.0 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        """A human summary, a few lines."""
        head = "Stopped" if self.stopped else "Finished"
        out = [f"{head}: {self.pairs_added} pairs added in {self.elapsed_s:.1f} s "
               f"({self.pairs_per_min:.1f} pairs/min); the project has {self.pairs_in_project} pairs.",
               f"Chunks: {self.chunks_done} done ({self.chunks_resumed} from earlier runs), "
               f"{self.chunks_failed} failed, {self.chunks_left} left of {self.chunks_total}.",
               f"Requests: {self.requests} ({self.retries} retries); tokens in/out: "
               f"{self.tokens_in}/{self.tokens_out}; cost: "
               + ("unknown (set generator.price_in_per_mtok and price_out_per_mtok)"
                  if self.cost is None else f"${self.cost:.4f}")]
        out.extend(f"Note: {notice}" for notice in self.notices)
        if self.dropped:
            out.append("Dropped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())))
        if self.pairs_rejected:
            out.append(f"{self.pairs_rejected} pairs failed a content check and were kept as rejected, with the "
                       "reason (Review: status:rejected).")
        checked = sum(n for reason, n in self.dropped.items() if reason in CHECK_REASONS)
        if checked and checked >= self.pairs_added:
            out.append("Most pairs failed the checks: the model writes questions that are not questions, answers "
                       "about the task, or answers the documents do not hold. A stronger model keeps more "
                       "(generator.provider and generator.model, or generator.embedded_gguf); "
                       "generator.min_support lowers the bar.")
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


# ---------------------------------------------------------------- internals

@dataclass
class WorkItem:
    key: str
    """Identifies the chunk across runs; also the `source` of its pairs."""
    messages: list[dict[str, str]]
    n_pairs: int
    chunk: str = ""
    """The document text the pairs must come from ('' for topic generation)."""


@dataclass
class _Outcome:
    key: str
    pairs: list[Pair]
    reason: str = ""  # empty: done

    @property
    def failed(self) -> bool:
        return bool(self.reason)


class ChunkFailed(Exception):
    """A work item gave up; the message is the reason recorded for it."""


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with jitter before retry number `attempt` (1, 2, ...)."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def retry_after_s(exc: Any) -> float | None:
    """The wait a 429/503 asks for in its Retry-After (seconds or an HTTP date), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after-ms")
    if value:
        try:
            return min(RETRY_AFTER_CAP_S, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(RETRY_AFTER_CAP_S, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(RETRY_AFTER_CAP_S, max(0.0, when.timestamp() - time.time()))


def _refuses_response_format(exc: Any) -> bool:
    if getattr(exc, "status_code", 0) not in (400, 415, 422, 500, 501):
        return False
    text = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    return any(word in text for word in ("response_format", "json_schema", "response format"))


def _chunk_key(source: str, index: int, text: str) -> str:
    return f"{source}#{index}:{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


_ROUND_SUFFIX = re.compile(r"\+r\d+$")
"""After a chunk's key: the round of asking again (run_documents)."""


def _topic_key(topic: str, index: int) -> str:
    return f"topic:{topic}#{index}"


class _Run:
    def __init__(self, project, on_event, stop: threading.Event | None):
        self.project = project
        self.g = project.config.generator
        self.on_event = on_event
        self.stop_event = stop
        self.store = PairStore(project.pairs_path)
        self.journal = GenerationJournal(journal_path(project))
        self.gate = QualityGate((p.question, p.answer) for p in self.store)
        self.done_keys = self.journal.done_keys(p.source for p in self.store)
        self.summary = GenerationSummary()
        self.started = time.monotonic()
        self.endpoint: Endpoint | None = None
        self.client = None
        self.mode = STRUCTURED_MODES[0]
        self.stopping = False
        self.price: tuple[float, float] | None = None
        self._pending: list[_Outcome] = []
        self._wake = asyncio.Event()
        self._closing = False
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
            dropped=dict(self.gate.dropped), elapsed_s=s.elapsed_s, message=message, summary=summary))

    def cost(self) -> float | None:
        if self.price is None:
            return None
        return (self.summary.tokens_in * self.price[0] + self.summary.tokens_out * self.price[1]) / 1e6

    def _known_price(self) -> tuple[float, float] | None:
        g, preset = self.g, self.endpoint.preset
        if g.price_in_per_mtok > 0 or g.price_out_per_mtok > 0:
            return g.price_in_per_mtok, g.price_out_per_mtok
        if preset.price_in_per_mtok is None:
            return None
        # A hosted preset's price is that of its default model only; a local server costs nothing.
        if preset.name in ("openai",) and self.endpoint.model != preset.model:
            return None
        return preset.price_in_per_mtok, preset.price_out_per_mtok

    # -- one request, and one question with its retries

    async def _request(self, messages, schema, max_tokens: int, temperature: float) -> tuple[str | None, str | None]:
        import openai

        while True:
            mode = self.mode
            extra: dict[str, Any] = {}
            if mode == "json_schema":
                extra["response_format"] = {"type": "json_schema",
                                            "json_schema": {"name": "reply", "schema": schema, "strict": False}}
            elif mode == "json_object_schema":
                extra["response_format"] = {"type": "json_object", "schema": schema}
            elif mode == "json_object":
                extra["response_format"] = {"type": "json_object"}
            self.summary.requests += 1
            try:
                response = await asyncio.wait_for(
                    self.client.chat.completions.create(
                        model=self.endpoint.model, messages=messages, max_tokens=max_tokens,
                        temperature=temperature, **extra),
                    timeout=self.g.timeout_s)
            except openai.APIStatusError as exc:
                if mode != "none" and _refuses_response_format(exc):
                    if self.mode == mode:  # another request may have stepped down already
                        self.mode = STRUCTURED_MODES[STRUCTURED_MODES.index(mode) + 1]
                        self.emit("message", f"the server refused response_format {mode}; "
                                             f"using {self.mode} instead")
                    continue
                raise
            usage = getattr(response, "usage", None)
            if usage is not None:
                self.summary.tokens_in += int(getattr(usage, "prompt_tokens", 0) or 0)
                self.summary.tokens_out += int(getattr(usage, "completion_tokens", 0) or 0)
            choice = response.choices[0]
            return choice.message.content, choice.finish_reason

    @property
    def out_of_budget(self) -> bool:
        return self.budget_used >= self.summary.budget > 0

    async def ask(self, messages, schema, max_tokens: int, parse: Callable[[str | None], Any],
                  temperature: float | None = None) -> Any:
        """The parsed reply to one question, retried as needed; ChunkFailed when it never comes."""
        import openai

        temperature = self.g.temperature if temperature is None else temperature
        attempts = self.g.max_retries + 1
        delay = 0.0
        reason = ""
        for attempt in range(attempts):
            if attempt:
                self.summary.retries += 1
                if delay > 0:
                    await asyncio.sleep(delay)
            delay = backoff_delay(attempt + 1)
            try:
                content, finish = await self._request(messages, schema, max_tokens, temperature)
            except openai.APIStatusError as exc:
                reason = describe_error(exc, self.endpoint)
                if exc.status_code in (401, 403):
                    raise FatalRequestError(f"the provider refused the request ({reason}); check the "
                                            "API key and generator.api_key_env") from None
                if exc.status_code == 404:
                    raise FatalRequestError(f"{redact_urls(self.endpoint.base_url)} has no model "
                                            f"{self.endpoint.model!r} or no chat endpoint ({reason}); "
                                            "check generator.model and generator.base_url") from None
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    wait = retry_after_s(exc)
                    if wait is not None:
                        delay = wait + random.uniform(0, 0.1 * wait + 0.05)
                    continue
                raise ChunkFailed(reason) from None  # any other 4xx: asking again changes nothing
            except (openai.APIError, asyncio.TimeoutError, ValueError, TypeError,
                    AttributeError, IndexError) as exc:
                # Timeouts, dropped connections, bodies that are not an API reply.
                reason = ("timed out" if isinstance(exc, asyncio.TimeoutError)
                          else describe_error(exc, self.endpoint))
                continue
            try:
                return parse(content)
            except prompts.ReplyError as exc:
                reason = f"malformed reply: {exc}"
                if finish == "length":
                    reason += " (cut off at max_tokens)"
                delay = 0.0  # not the server's load: ask again at once
        raise ChunkFailed(f"{reason} (after {attempts} attempts)")

    # -- one work item

    async def work(self, item: WorkItem) -> None:
        schema = prompts.pairs_schema(item.n_pairs, self.g.answer_length)
        max_tokens = prompts.pairs_max_tokens(item.n_pairs, self.g.answer_length)
        try:
            found = await self.ask(item.messages, schema, max_tokens, prompts.parse_pairs)
        except ChunkFailed as exc:
            self.commit(_Outcome(item.key, [], str(exc)))
            return
        kept: list[Pair] = []
        for question, answer in found[: item.n_pairs]:
            reason = self.gate.screen(question, answer)
            if reason:
                self.gate.drop(reason)
                continue
            reason, scores = content_problem(question, answer, item.chunk, self.g.min_support,
                                             self.g.min_question_support)
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
        self.commit(_Outcome(item.key, kept))

    async def judge(self, question: str, answer: str) -> int | None:
        try:
            return await self.ask(prompts.judge_messages(question, answer), prompts.JUDGE_SCHEMA,
                                  24, prompts.parse_score, temperature=0.0)
        except ChunkFailed:
            self.summary.judge_errors += 1
            return None

    # -- committing results (grouped, off the event loop, without holding up the workers)

    def commit(self, outcome: _Outcome) -> None:
        """Hand a finished chunk to the writer; the worker goes on to its next chunk at once."""
        self._pending.append(outcome)
        self._wake.set()

    async def _writer(self) -> None:
        # Everything that finished while the last write ran goes out in one write.
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._pending = self._pending, []
            await self._write(batch)

    async def _write(self, batch: list[_Outcome]) -> None:
        await asyncio.to_thread(self._write_to_disk, batch)
        s = self.summary
        for outcome in batch:
            if outcome.failed:
                s.chunks_failed += 1
                s.failures[outcome.key] = outcome.reason
            else:
                s.chunks_done += 1
                s.pairs_added += sum(1 for p in outcome.pairs if p.status != "rejected")
                s.pairs_rejected += sum(1 for p in outcome.pairs if p.status == "rejected")
                self.done_keys.add(outcome.key)
        self.emit("progress")

    def journal_recovered(self, keys: Iterable[str]) -> None:
        """Write the lost journal lines of chunks recognized as done by their stored pairs."""
        journaled = self.journal.done_keys()
        missing = [key for key in keys if key in self.done_keys and key not in journaled]
        if missing:
            pairs = Counter(p.source for p in self.store)
            self.journal.append([{"key": key, "status": "done", "pairs": pairs[key], "recovered": True}
                                 for key in missing])

    def _write_to_disk(self, batch: list[_Outcome]) -> None:
        # Pairs first (appended and fsynced), then the journal (appended and flushed).
        # A crash in between, or one that loses the unsynced journal lines, leaves
        # pairs whose chunk the next run recognizes by their source (see journal.py);
        # a chunk that kept no pairs is merely asked again.
        self.store.add(p for outcome in batch for p in outcome.pairs)
        self.journal.append([
            {"key": o.key, "status": "failed", "reason": o.reason} if o.failed
            else {"key": o.key, "status": "done", "pairs": len(o.pairs)}
            for o in batch], sync=False)

    # -- running a list of work items

    async def run_items(self, items: Iterable[WorkItem]) -> None:
        todo = iter(items)
        self._closing = False
        writer = asyncio.create_task(self._writer())

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
            self._closing = True
            self._wake.set()
            await writer

    async def watch_stop(self) -> None:
        while not self.stop_event.is_set():
            await asyncio.sleep(STOP_POLL_S)
        self.stopping = True
        self.summary.stopped = True
        for task in self._workers:
            task.cancel()

    # -- planning

    def document_items(self) -> list[WorkItem]:
        g = self.g
        items = []
        for path in find_documents(self.project):
            source = source_name(self.project, path)
            for index, text in enumerate(split_text(read_document(path), g.chunk_chars, g.chunk_overlap)):
                key = _chunk_key(source, index, text)
                items.append(WorkItem(key, prompts.chunk_messages(g, text, g.pairs_per_chunk), g.pairs_per_chunk,
                                      chunk=text))
        if not items:
            raise TunewizError("generator.documents: the documents hold no text")
        return items

    def _kept(self, keys: set[str], prefix: str = "") -> int:
        """Pairs the project holds (not rejected) from these work items (a later round's key is `key+rN`)."""
        return sum(1 for p in self.store if p.status != "rejected"
                   and ((_ROUND_SUFFIX.sub("", p.source) in keys) if keys else p.source.startswith(prefix)))

    async def run_documents(self, items: list[WorkItem]) -> None:
        """Every chunk once; then, while pairs are missing, every chunk again for new questions (each
        round's items have their own keys, so a resumed run skips what it already did)."""
        g = self.g
        self.journal_recovered(item.key for item in items)
        todo = [item for item in items if item.key not in self.done_keys]
        resumed = len(items) - len(todo)
        self.summary.chunks_total = len(items)
        self.summary.chunks_done = self.summary.chunks_resumed = resumed
        self.emit("started", f"{len(items)} chunks, {resumed} already done")
        await self.run_items(todo)
        keys = {item.key for item in items}
        idle_rounds, self.summary.rounds = 0, 1
        for round_ in range(1, MAX_ROUNDS):
            missing = g.num_pairs - self._kept(keys)
            if missing <= 0 or self.stopping or self.out_of_budget or idle_rounds >= 2:
                break
            again = [WorkItem(f"{item.key}+r{round_}", prompts.chunk_messages(g, item.chunk, g.pairs_per_chunk, round_),
                              g.pairs_per_chunk, chunk=item.chunk) for item in items]
            self.journal_recovered(item.key for item in again)
            todo = [item for item in again if item.key not in self.done_keys]
            self.summary.chunks_total += len(again)
            self.summary.chunks_done += len(again) - len(todo)
            self.summary.chunks_resumed += len(again) - len(todo)
            self.emit("message", f"{missing} pairs still missing: every chunk again ({len(todo)} requests)")
            self.summary.rounds += 1
            added_before = self.summary.pairs_added
            await self.run_items(todo)
            if todo:  # a round done by an earlier run says nothing about this one
                idle_rounds = idle_rounds + 1 if self.summary.pairs_added == added_before else 0
        self.summary.kept = self._kept(keys)

    async def subtopics(self, topic: str, count: int) -> list[str]:
        if topic in self.journal.subtopics:
            return self.journal.subtopics[topic]
        k = min(MAX_SUBTOPICS, count)
        try:
            items = await self.ask(prompts.subtopics_messages(self.g, topic, k), prompts.subtopics_schema(k),
                                   k * 30 + 40, prompts.parse_subtopics)
        except ChunkFailed as exc:
            self.emit("message", f"no subtopics ({exc}); asking about the topic as a whole")
            return []
        await asyncio.to_thread(self.journal.append, [{"kind": "subtopics", "topic": topic, "items": items}])
        self.emit("message", f"subtopics: {', '.join(items)}")
        return items

    async def run_topic(self) -> None:
        g = self.g
        topic = g.topic.strip()
        prefix = _topic_key(topic, 0)[:-1]
        subtopics = await self.subtopics(topic, math.ceil(g.num_pairs / g.pairs_per_chunk)) if g.subtopics else []
        done_before = sorted(key for key in self.done_keys if key.startswith(prefix))
        self.journal_recovered(done_before)
        self.summary.chunks_total = self.summary.chunks_done = self.summary.chunks_resumed = len(done_before)
        index, idle_rounds = 0, 0

        def round_items(missing: int) -> Iterator[WorkItem]:
            # Lazily: a million pairs must not mean a million prompts in memory.
            nonlocal index
            asked = 0
            while asked < missing:
                key = _topic_key(topic, index)
                if key not in self.done_keys:
                    n = min(g.pairs_per_chunk, missing - asked)
                    sub = subtopics[index % len(subtopics)] if subtopics else ""
                    round_ = index // len(subtopics) if subtopics else index
                    asked += n
                    yield WorkItem(key, prompts.topic_messages(g, topic, sub, n, round_), n)
                index += 1

        for _round in range(MAX_ROUNDS):
            have = self._kept(set(), prefix)
            missing = g.num_pairs - have
            if missing <= 0 or self.stopping or self.out_of_budget:
                break
            count = math.ceil(missing / g.pairs_per_chunk)
            self.summary.chunks_total += count
            self.emit("started" if _round == 0 else "message",
                      "" if _round == 0 else f"{missing} pairs still missing: {count} more requests")
            added_before = self.summary.pairs_added
            self.summary.rounds += 1
            await self.run_items(round_items(missing))
            idle_rounds = idle_rounds + 1 if self.summary.pairs_added == added_before else 0
            if idle_rounds >= 2:
                break
        self.summary.kept = self._kept(set(), prefix)

    async def run(self) -> GenerationSummary:
        import openai

        g = self.g
        if not g.documents and not g.topic.strip():
            raise TunewizError("nothing to generate from: set generator.topic or generator.documents "
                               "(e.g. `tunewiz generate --topic 'photosynthesis'`)")
        items = self.document_items() if g.documents else None
        needed = max(len(items or []), math.ceil(g.num_pairs / g.pairs_per_chunk))
        self.summary.wanted = g.num_pairs
        self.summary.budget = g.request_budget or AUTO_BUDGET_FACTOR * needed
        with contextlib.ExitStack() as stack:
            if self.stop_event is None:
                self.stop_event = threading.Event()
            if self.g.provider == "embedded":
                self.emit("message", "starting the embedded llama.cpp server")
            self.endpoint = await asyncio.to_thread(stack.enter_context, open_endpoint(self.project))
            self.mode = self.endpoint.preset.structured
            self.price = self._known_price()
            # The client's own timeout is a backstop; asyncio.wait_for enforces timeout_s.
            self.client = openai.AsyncOpenAI(base_url=self.endpoint.base_url, api_key=self.endpoint.api_key,
                                             timeout=g.timeout_s + 5, max_retries=0)
            watcher = asyncio.create_task(self.watch_stop())
            try:
                if items is not None:
                    await self.run_documents(items)
                else:
                    await self.run_topic()
            finally:
                watcher.cancel()
                await self.client.close()
                # Stopping the embedded server blocks for a moment: not on the loop.
                await asyncio.to_thread(stack.close)
        self.summary.elapsed_s = time.monotonic() - self.started
        self.summary.cost = self.cost()
        self.summary.dropped = dict(self.gate.dropped)
        self.summary.pairs_in_project = len(self.store)
        self.summary.notices = list(self.store.notices)
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

"""Committing finished work items: their pairs appended to the project, then the chunk marked done.

Commits are grouped (one fsync for all the chunks that finished while the last write ran)
and run in a thread, so the event loop never waits on the disk and no worker waits for a write.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

from tunewiz.dataset import Pair, PairStore
from tunewiz.generators.journal import GenerationJournal


@dataclass
class Outcome:
    key: str
    pairs: list[Pair]
    reason: str = ""  # empty: done

    @property
    def failed(self) -> bool:
        return bool(self.reason)


WRITE_INTERVAL_S = 0.05
"""At most ~20 grouped writes (each an fsync) a second: at 200 replies a second, one write per reply or
two cost the writer thread ~0.3 ms of CPU per reply (benchmarks/generate.py). A crash loses at most this
much finished work, which the next run asks again."""


class Committer:
    """The writer of one generation run: `commit` from the workers, `writer()` as one task of the loop,
    `close()` once the workers are done (what is pending still goes out; a disk error raises there)."""

    def __init__(self, store: PairStore, journal: GenerationJournal, summary, on_written: Callable[[], None]) -> None:
        self.store, self.journal, self.summary, self.on_written = store, journal, summary, on_written
        self.done_keys = journal.done_keys(p.source for p in store)
        self._pending: list[Outcome] = []
        self._wake = asyncio.Event()
        self._closing = False

    def open(self) -> "asyncio.Task":
        """Start the writer task for one list of work items."""
        self._closing = False
        return asyncio.create_task(self._writer())

    async def close(self, writer: "asyncio.Task") -> None:
        self._closing = True
        self._wake.set()
        await writer

    def commit(self, outcome: Outcome) -> None:
        """Hand a finished chunk to the writer; the worker goes on to its next chunk at once."""
        self._pending.append(outcome)
        self._wake.set()

    async def _writer(self) -> None:
        # Everything that finished while the last write ran, or within WRITE_INTERVAL_S of its start,
        # goes out in one write.
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            started = loop.time()
            batch, self._pending = self._pending, []
            await self._write(batch)
            rest = WRITE_INTERVAL_S - (loop.time() - started)
            if rest > 0 and not self._closing:
                await asyncio.sleep(rest)

    async def _write(self, batch: list[Outcome]) -> None:
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
        self.on_written()

    def journal_recovered(self, keys: Iterable[str]) -> None:
        """Write the lost journal lines of chunks recognized as done by their stored pairs."""
        journaled = self.journal.done_keys()
        missing = [key for key in keys if key in self.done_keys and key not in journaled]
        if missing:
            pairs = Counter(p.source for p in self.store)
            self.journal.append([{"key": key, "status": "done", "pairs": pairs[key], "recovered": True}
                                 for key in missing])

    def _write_to_disk(self, batch: list[Outcome]) -> None:
        # Pairs first (appended and fsynced), then the journal (appended and flushed).
        # A crash in between, or one that loses the unsynced journal lines, leaves
        # pairs whose chunk the next run recognizes by their source (see journal.py);
        # a chunk that kept no pairs is merely asked again.
        self.store.add(p for outcome in batch for p in outcome.pairs)
        self.journal.append([
            {"key": o.key, "status": "failed", "reason": o.reason} if o.failed
            else {"key": o.key, "status": "done", "pairs": len(o.pairs)}
            for o in batch], sync=False)

"""`data/generation.jsonl`: one line per finished chunk (done, or failed with its reason).

A re-run reads it and skips the chunks already done; failed ones are tried again.
Lines are appended after the chunk's pairs are fsynced into pairs.jsonl, and are
themselves only flushed: a crash can lose the last journal lines but never a pair.
`done_keys` also counts a chunk as done when pairs.jsonl holds pairs from it, so
such a chunk is not generated twice (the runner then writes its lost line, marked
"recovered"); one that kept no pairs is simply asked again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from tunewiz.dataset import now_iso
from tunewiz.journal import append_lines

JOURNAL_NAME = "generation.jsonl"


def journal_path(project) -> Path:
    return project.pairs_path.parent / JOURNAL_NAME


class GenerationJournal:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.status: dict[str, dict[str, Any]] = {}
        self.subtopics: dict[str, list[str]] = {}
        if self.path.exists():
            with self.path.open("r", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line torn by a crash
                    if not isinstance(record, dict):
                        continue
                    if record.get("kind") == "subtopics":
                        self.subtopics[record["topic"]] = list(record["items"])
                    elif "key" in record:
                        self.status[record["key"]] = record

    def done_keys(self, pair_sources: Iterable[str] = ()) -> set[str]:
        done = {key for key, record in self.status.items() if record.get("status") == "done"}
        return done | set(pair_sources)

    def failures(self) -> dict[str, str]:
        return {key: r.get("reason", "") for key, r in self.status.items() if r.get("status") == "failed"}

    def append(self, records: list[dict[str, Any]], sync: bool = True) -> None:
        """Append records; `sync=False` flushes without fsync (for lines a crash may lose)."""
        if not records:
            return
        stamp = now_iso()
        append_lines(self.path, (json.dumps({**r, "at": stamp}, ensure_ascii=False) + "\n" for r in records),
                     sync=sync)
        for record in records:
            if record.get("kind") == "subtopics":
                self.subtopics[record["topic"]] = list(record["items"])
            elif "key" in record:
                self.status[record["key"]] = record

"""Counts of a project's pairs without loading them: what `tunewiz status` and the wizard's
sidebar show, under a second on 200k pairs.

`data/.pairs-stats.json` keeps, per live pair, the few facts the summaries need (status,
answer length, whether the answer holds code or a list, its split position), and the byte
offset of the journal it has read up to, with the bytes just before it. The journal is
append-only, so a later call reads only the new tail; when the file was rewritten
(compacted, edited by hand) the check bytes differ and it is read again from the start.
The cache is a convenience: unreadable or unwritable, the counts are computed anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tunewiz.dataset import STATUSES, formatted_answer, kind_from_answers, split_position
from tunewiz.project import atomic_write_text

STATS_FILE = ".pairs-stats.json"
CHECK_BYTES = 64
VERSION = 2
UNREADABLE_KEPT = 20
"""Line numbers of unreadable lines kept in the cache (their count is kept whole)."""


@dataclass
class PairSummary:
    total: int
    counts: dict[str, int]
    train: int
    validation: int
    kind: str
    kind_why: str
    unreadable: int = 0
    """Complete lines of the journal that are no pair record (the store skips them too)."""
    unreadable_lines: tuple[int, ...] = ()
    """The first UNREADABLE_KEPT of them, by line number."""


def pair_summary(project) -> PairSummary:
    """Counts by status, the train/validation split and the kind, as the project's settings say."""
    ds = project.config.dataset
    facts, unreadable = _refresh(project.pairs_path, ds.split_seed)
    counts = {status: 0 for status in STATUSES}
    for status, *_ in facts.values():
        counts[status] = counts.get(status, 0) + 1
    allowed = {"accepted"} if ds.train_on == "accepted" else {"accepted", "pending"}
    trainable = [f for f in facts.values() if f[0] in allowed]
    if ds.kind == "auto":
        kind, why = kind_from_answers([f[1] for f in trainable], sum(1 for f in trainable if f[2]))
        why = f"auto: {why}"
    else:
        kind, why = ds.kind, "set in the project"
    if kind == "facts":
        train, validation = len(trainable), 0
    else:
        validation = sum(1 for f in trainable if f[3] < ds.validation_fraction)
        train = len(trainable) - validation
        if ds.validation_fraction > 0 and not validation and train >= 2:
            train, validation = train - 1, 1  # as split_pairs: validation is never empty
    return PairSummary(len(facts), counts, train, validation, kind, why, unreadable["count"],
                       tuple(unreadable["lines"]))


def _refresh(journal: Path, seed: int) -> tuple[dict[str, list], dict]:
    """(id -> [status, answer words, formatted, split position] of every live pair,
    {"count": unreadable complete lines, "lines": the first of their numbers, "read": lines read})."""
    cache_path = journal.parent / STATS_FILE
    cache = _read_cache(cache_path, seed)
    try:
        handle = journal.open("rb")
    except FileNotFoundError:
        return {}, {"count": 0, "lines": [], "read": 0}
    with handle:
        size = handle.seek(0, 2)
        offset = cache["offset"] if cache else 0
        if offset > size or (offset and _check(handle, offset) != cache["check"]):
            cache, offset = None, 0  # rewritten, not appended to
        facts = cache["facts"] if cache else {}
        unreadable = cache["unreadable"] if cache else {"count": 0, "lines": [], "read": 0}
        if offset == size:
            return facts, unreadable
        handle.seek(offset)
        for line in handle:  # line by line: a 200k-pair tail is never held whole
            if not line.endswith(b"\n"):
                break  # a torn last line is left for the next call
            offset += len(line)
            unreadable["read"] += 1
            if line.strip() and not _apply(facts, line, seed):
                unreadable["count"] += 1
                if len(unreadable["lines"]) < UNREADABLE_KEPT:
                    unreadable["lines"].append(unreadable["read"])
        check = _check(handle, offset)
    try:
        atomic_write_text(cache_path, json.dumps({"version": VERSION, "seed": seed, "offset": offset,
                                                  "check": check, "facts": facts, "unreadable": unreadable},
                                                 separators=(",", ":")))
    except OSError:
        pass  # a read-only or full disk: the counts are right, only the next call is slower
    return facts, unreadable


def _apply(facts: dict[str, list], line: bytes, seed: int) -> bool:
    """Count one journal line in; False when it is no pair record (the store skips it too)."""
    try:
        record = json.loads(line)
        pair_id = record["id"]
        if record.get("deleted"):
            facts.pop(pair_id, None)
            return True
        answer = record.get("answer", "")
        facts[pair_id] = [record.get("status", "pending"), len(answer.split()), formatted_answer(answer),
                          split_position(pair_id, seed)]
        return True
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def _check(handle, offset: int) -> str:
    handle.seek(max(0, offset - CHECK_BYTES))
    return handle.read(min(offset, CHECK_BYTES)).hex()


def _read_cache(path: Path, seed: int) -> dict | None:
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cache, dict) or cache.get("version") != VERSION or cache.get("seed") != seed:
        return None
    return cache


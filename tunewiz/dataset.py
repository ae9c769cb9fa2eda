"""The QA pairs of a project: `data/pairs.jsonl`, an append-only journal of pair records.

Every change is one appended, flushed line: a new pair, an edited pair (same id,
later line wins) or a deletion (`{"id": ..., "deleted": true}`). Appends go
through `tunewiz.journal`: all or nothing, and never onto a torn last line (that
is set aside in a side file first; `notices` says where). A torn line is skipped
on load. `compact()` rewrites the file atomically with one line per live pair
when superseded lines pile up.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from tunewiz.errors import TunewizError
from tunewiz.journal import append_lines, torn_tail_notice, torn_tail_size
from tunewiz.project import atomic_write_text

STATUSES = ("pending", "accepted", "rejected")
TEXT_FIELDS = ("question", "answer", "system", "source", "reason")


def check_pair(pair: "Pair") -> None:
    """Refuse a pair the journal must not hold: a bad status, or a text field that is not a string
    (an importer's bug would otherwise store a structure's representation and train on it)."""
    if pair.status not in STATUSES:
        raise ValueError(f"pair {pair.id}: status must be one of {', '.join(STATUSES)}")
    for name in TEXT_FIELDS:
        if not isinstance(getattr(pair, name), str):
            raise ValueError(f"pair {pair.id}: {name} must be text, got {type(getattr(pair, name)).__name__}")
    check_history(pair.history, f"pair {pair.id}")


def prompt_text(pair: "Pair") -> str:
    """Everything a sample asks, for duplicate checks: its own system prompt (the same question under
    "Answer in French." is another sample), a conversation's earlier turns and its question."""
    if not pair.history and not pair.system:
        return pair.question
    return "\n".join([pair.system] * bool(pair.system) + [turn["content"] for turn in pair.history] + [pair.question])


def check_history(history: Any, where: str) -> None:
    """The earlier turns of a conversation: alternating user/assistant text turns from a user turn."""
    if not isinstance(history, list) or len(history) % 2:
        raise ValueError(f"{where}: history must be a list of user/assistant turn pairs")
    for number, turn in enumerate(history):
        want = "user" if number % 2 == 0 else "assistant"
        if not isinstance(turn, dict) or turn.get("role") != want or not isinstance(turn.get("content"), str):
            raise ValueError(f"{where}: history[{number}] must be a {want} turn with text content")
        if turn.get("weight", 1) not in (0, 1):
            raise ValueError(f"{where}: history[{number}].weight must be 0 or 1")


_last_stamp: tuple[int, str] = (0, "")


def now_iso() -> str:
    """The time now, to the second (UTC). Pairs made in the same second share one string: 200k
    imported pairs would otherwise hold 400k copies of it."""
    global _last_stamp
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    second = int(now.timestamp())
    if _last_stamp[0] != second:
        _last_stamp = (second, now.isoformat())
    return _last_stamp[1]


_ID_BITS = random.Random()  # its own generator: a random.seed() elsewhere (transformers' set_seed) never repeats ids
os.register_at_fork(after_in_child=_ID_BITS.seed)  # a forked process draws its own ids


def new_pair_id() -> str:
    """48 random bits in hex, as uuid4().hex[:12] was, at a ninth of its cost (no system call per id:
    a generated or imported pair is made in a few microseconds)."""
    return f"{_ID_BITS.getrandbits(48):012x}"


@dataclass(slots=True)  # slots: a big project holds hundreds of thousands of these
class Pair:
    """One question/answer pair and where it came from."""

    question: str
    answer: str
    id: str = field(default_factory=new_pair_id)
    system: str = ""
    """A system prompt for this pair alone; empty means the project's."""
    source: str = ""
    """Where it came from: an imported file and line, or a document and chunk."""
    status: str = "pending"
    scores: dict[str, float] = field(default_factory=dict)
    """Named scores, e.g. {"judge": 8}."""
    reason: str = ""
    """Why a check of generation rejected it (e.g. 'unsupported'); Review can still accept it."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """For a conversation, the turns before the final question: {"role": "user" | "assistant",
    "content": text, "weight": 0 (optional: an answer not trained on)}, alternating from a user
    turn. Empty for a QA pair (records written before conversations existed have none)."""
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)

    def to_record(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["scores"] = dict(self.scores)  # a copy, as asdict would give (and 3x faster)
        record["history"] = [dict(turn) for turn in self.history]
        if not record["history"]:
            del record["history"]  # QA pairs stay in the format older versions read
        if not record["reason"]:
            del record["reason"]
        return record

    @property
    def turns(self) -> int:
        """User turns in the sample: 1 for a QA pair."""
        return len(self.history) // 2 + 1

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Pair":
        known = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        return cls(**known)


def check_verdict(pair: Pair) -> str:
    """The check that rejected a generated pair, as the front ends show it ('' when none did); once a
    person accepted the pair or put it back to pending, the verdict stands overruled."""
    if not pair.reason:
        return ""
    return pair.reason if pair.status == "rejected" else f"{pair.reason}, overruled"


class PairStore:
    """Reads and appends the pairs journal of one project."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._loaded: dict[str, Pair] = {}
        self._stale = False
        """Pairs were streamed in (append_pairs) and not kept: reload before reading them."""
        self._live = 0
        self._lines = 0
        self.torn_lines: list[int] = []
        self.notices: list[str] = []
        """What a write had to do to keep data safe (a torn tail set aside), for the user to read."""
        self._places: dict[str, int] = {}
        """Each id's place in the order pairs were first written, kept when the pair is deleted: undo puts a
        deleted pair back where it was, not at the end."""
        self.load()

    # -- reading

    @property
    def _pairs(self) -> dict[str, Pair]:
        if self._stale:
            self.load()
        return self._loaded

    def load(self) -> None:
        self._stale = False
        self._loaded = {}
        self._places = {}
        self._lines = 0
        self.torn_lines = []
        if not self.path.exists():
            return
        restored = False
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                self._lines += 1
                try:
                    record = json.loads(line)
                    if record.get("deleted"):
                        self._loaded.pop(record["id"], None)
                    else:
                        pair = Pair.from_record(record)
                        restored |= self._place(pair.id, self._loaded)
                        self._loaded[pair.id] = pair
                except (ValueError, KeyError, TypeError, AttributeError):
                    # A line cut short by a crash mid-write: skip it, keep the rest.
                    self.torn_lines.append(number)
        if restored:
            self._put_in_place()

    def _place(self, pair_id: str, live: dict[str, Pair]) -> bool:
        """Give `pair_id` its place if it has none; whether it is a deleted pair coming back."""
        back = pair_id in self._places and pair_id not in live
        self._places.setdefault(pair_id, len(self._places))
        return back

    def _put_in_place(self) -> None:
        """Order the pairs by their places (after a deleted pair came back)."""
        self._loaded = dict(sorted(self._loaded.items(), key=lambda item: self._places[item[0]]))

    def unreadable_notice(self) -> str:
        """What the user should hear of lines that were skipped when reading ('' when none was)."""
        if self._stale:
            self.load()
        lines = self.torn_lines
        if not lines:
            return ""
        shown = ", ".join(str(n) for n in lines[:5]) + (", ..." if len(lines) > 5 else "")
        return (f"{self.path}: skipped {len(lines)} unreadable line{'s' if len(lines) != 1 else ''} "
                f"(line{'s' if len(lines) != 1 else ''} {shown}); fix or remove {'them' if len(lines) != 1 else 'it'}, "
                "every other pair is read")

    def __len__(self) -> int:
        return self._live if self._stale else len(self._loaded)

    def __iter__(self) -> Iterator[Pair]:
        return iter(list(self._pairs.values()))

    def __contains__(self, pair_id: str) -> bool:
        return pair_id in self._pairs

    def get(self, pair_id: str) -> Pair:
        return self._pairs[pair_id]

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUSES}
        for pair in self._pairs.values():
            counts[pair.status] = counts.get(pair.status, 0) + 1
        return counts

    def dataframe(self):
        """All live pairs as a pandas DataFrame (one row per pair)."""
        import pandas as pd

        columns = list(Pair.__dataclass_fields__)
        return pd.DataFrame([p.to_record() for p in self._pairs.values()], columns=columns)

    # -- writing

    def _append_records(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records, all or nothing; returns how many lines were stored."""
        # torn_lines and _lines stay right after a streamed append (every line it wrote is readable): no reload
        tail = 1 if self.torn_lines and torn_tail_size(self.path) else 0  # a write cut short: set aside below
        if len(self.torn_lines) > tail and not self._lines - len(self.torn_lines):
            # Not one line of it is a pair: another file (dataset.pairs_file naming the user's notes, say),
            # which must not get pairs appended to it.
            raise TunewizError(f"{self.path}: no line of it is a pair, so it is no pairs file; pairs are not "
                               "added to it (dataset.pairs_file names another file? the default is "
                               "data/pairs.jsonl)")
        written, side = append_lines(self.path, (json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        if side is not None:
            self.notices.append(torn_tail_notice(self.path, side))
        self._lines += written
        return written

    def append_pairs(self, pairs: Iterable[Pair]) -> int:
        """Append new pairs as they come without keeping them (an import of a big file); all or
        nothing. Returns how many were stored; the next read of the pairs reloads the journal."""
        live = len(self)

        def records():
            for pair in pairs:
                check_pair(pair)
                yield pair.to_record()

        written = self._append_records(records())
        if written:
            self._loaded, self._stale, self._live = {}, True, live + written  # new ids: nothing replaced
        return written

    def add(self, pairs: Iterable[Pair]) -> list[Pair]:
        pairs = list(pairs)
        for pair in pairs:
            check_pair(pair)
        self._append_records(p.to_record() for p in pairs)
        self._keep(pairs)
        return pairs

    def _keep(self, pairs: list[Pair]) -> None:
        """Hold written pairs in memory, a deleted one that comes back (undo) in its old place."""
        live = self._pairs
        restored = False
        for pair in pairs:
            restored |= self._place(pair.id, live)
            live[pair.id] = pair
        if restored:
            self._put_in_place()

    def update(self, pair_id: str, **changes: Any) -> Pair:
        """Change fields of one pair (question, answer, system, status, scores, source)."""
        pair = self._pairs[pair_id]
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {changes['status']!r}")
        for key, value in changes.items():
            if key in ("id", "created") or key not in Pair.__dataclass_fields__:
                raise ValueError(f"cannot change {key!r} of a pair")
            if key in TEXT_FIELDS and not isinstance(value, str):
                raise ValueError(f"pair {pair_id}: {key} must be text, got {type(value).__name__}")
            if key == "history":
                check_history(value, f"pair {pair_id}")
            setattr(pair, key, value)
        if {"question", "answer", "history"} & changes.keys() and "reason" not in changes:
            pair.reason = ""  # a check's verdict was on the text as it was, not as the user wrote it
        pair.updated = now_iso()
        self._append_records([pair.to_record()])
        return pair

    def put(self, pair: Pair) -> None:
        """Write a whole pair back as it is (used by undo to restore an earlier state)."""
        self._append_records([pair.to_record()])
        self._keep([pair])

    def delete(self, pair_id: str) -> Pair:
        pair = self._pairs.pop(pair_id)
        self._append_records([{"id": pair_id, "deleted": True}])
        return pair

    def delete_many(self, pair_ids: Iterable[str]) -> list[Pair]:
        """Delete several pairs in one append (bulk delete in the review step)."""
        removed = [self._pairs.pop(pair_id) for pair_id in list(pair_ids) if pair_id in self._pairs]
        self._append_records({"id": p.id, "deleted": True} for p in removed)
        return removed

    def set_status(self, pair_ids: Iterable[str], status: str) -> int:
        """Bulk status change in one append."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        stamp = now_iso()
        changed = []
        for pair_id in pair_ids:
            pair = self._pairs[pair_id]
            if pair.status != status:
                pair.status, pair.updated = status, stamp
                changed.append(pair)
        self._append_records(p.to_record() for p in changed)
        return len(changed)

    def superseded_lines(self) -> int:
        return self._lines - len(self._pairs)

    def compact(self) -> None:
        """Rewrite the journal with one line per live pair (atomic)."""
        text = "".join(json.dumps(p.to_record(), ensure_ascii=False) + "\n" for p in self._pairs.values())
        atomic_write_text(self.path, text)
        self._lines = len(self._pairs)


# ---------------------------------------------------------------- the split

def split_position(pair_id: str, seed: int) -> float:
    """Where a pair falls in [0, 1) for the split: a hash of its id and the seed."""
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_validation(pair_id: str, seed: int, fraction: float) -> bool:
    """Whether a pair is held out. Depends only on its id and the seed, so adding or
    removing other pairs never moves a pair between train and validation."""
    return split_position(pair_id, seed) < fraction


def trainable(pairs: Iterable[Pair], train_on: str) -> list[Pair]:
    allowed = {"accepted"} if train_on == "accepted" else {"accepted", "pending"}
    return [p for p in pairs if p.status in allowed]


def split_pairs(pairs: Iterable[Pair], seed: int, fraction: float) -> tuple[list[Pair], list[Pair]]:
    """(train, validation), each sorted by id so the order is stable too.

    A small set can hash every pair above the fraction (12 pairs at 0.2: one time in
    fourteen), which would silently turn off validation loss and overfitting checks.
    Then the pair nearest the threshold is held out: with fraction > 0 and at least two
    pairs, validation is never empty."""
    train, validation = [], []
    for pair in sorted(pairs, key=lambda p: p.id):
        (validation if is_validation(pair.id, seed, fraction) else train).append(pair)
    if fraction > 0 and not validation and len(train) >= 2:
        nearest = min(train, key=lambda p: split_position(p.id, seed))
        train.remove(nearest)
        validation.append(nearest)
    return train, validation


# ---------------------------------------------------------------- the kind of data

FACT_ANSWER_WORDS = 40
"""Data whose typical answer is at most this many words, without code or lists, is facts."""



def detect_kind(pairs: list[Pair]) -> tuple[str, str]:
    """('facts' or 'skill', why) for `dataset.kind = auto`."""
    return kind_from_answers([len(p.answer.split()) for p in pairs],
                             sum(1 for p in pairs if formatted_answer(p.answer)))


def kind_from_answers(lengths: list[int], formatted: int) -> tuple[str, str]:
    """detect_kind from the answers' word counts and how many hold code or lists."""
    if not lengths:
        return "facts", "no pairs yet"
    median = statistics.median(lengths)
    share = formatted / len(lengths)
    if median <= FACT_ANSWER_WORDS and share <= 0.2:
        return "facts", (f"answers are short statements (median {median:g} words): knowledge to recall, "
                         "judged on reworded questions")
    why = (f"{share:.0%} of answers hold code or lists" if share > 0.2
           else f"answers are long (median {median:g} words)")
    return "skill", f"{why}: a skill, judged on held-out pairs"


def formatted_answer(text: str) -> bool:
    """Whether an answer holds code or a list (a sign of skill data)."""
    return "```" in text or bool(_LIST_ITEM.search(text))


_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s", re.MULTILINE)


def project_kind(project, pairs: list[Pair]) -> tuple[str, str]:
    """('facts' or 'skill', why) as `dataset.kind` says (auto: from the pairs)."""
    kind = project.config.dataset.kind
    if kind != "auto":
        return kind, "set in the project"
    kind, why = detect_kind(pairs)
    return kind, f"auto: {why}"


def project_split(project, store: PairStore | None = None) -> tuple[list[Pair], list[Pair]]:
    """The train/validation pairs of a project, as its [dataset] section says (`store`: the project's
    pairs, already read).

    Facts all train: a fact held out can never be recalled, so its loss only rises;
    reworded questions of trained facts validate instead (`tunewiz.evalsets`)."""
    ds = project.config.dataset
    pairs = trainable(store if store is not None else PairStore(project.pairs_path), ds.train_on)
    if project_kind(project, pairs)[0] == "facts":
        return sorted(pairs, key=lambda p: p.id), []
    return split_pairs(pairs, ds.split_seed, ds.validation_fraction)

"""The Review step's search box: free text plus `key:value` filters, and row statistics.

    capital france status:pending source:faq.csv score>=7 is:dup is:marked reason:unsupported

Free words must all appear in the question or answer (case-insensitive);
`status:` takes accepted, pending or rejected; `source:` matches part of the
source; `score>=N` / `score<=N` compare the judge score (pairs without a score
never match a score filter); `is:dup` keeps near-duplicates, `is:marked` marked rows;
`reason:` matches the check that rejected a generated pair (unsupported, meta_answer, ...).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Iterable

from tunewiz.dataset import STATUSES, Pair
from tunewiz.tui.widgets.pair_table import pair_score

_SCORE = re.compile(r"^score(>=|<=|>|<|=)(-?\d+(?:\.\d+)?)$")


@dataclass
class Query:
    words: list[str] = field(default_factory=list)
    status: str | None = None
    source: str | None = None
    reason: str | None = None
    score_ops: list[tuple[str, float]] = field(default_factory=list)
    only_dup: bool = False
    only_marked: bool = False

    @property
    def empty(self) -> bool:
        return not (self.words or self.status or self.source or self.reason or self.score_ops or self.only_dup
                    or self.only_marked)


def parse_query(text: str) -> Query:
    """Raises ValueError naming the part it does not understand."""
    query = Query()
    for token in text.split():
        lowered = token.lower()
        if lowered.startswith("status:"):
            status = lowered[7:]
            if status not in STATUSES:
                raise ValueError(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
            query.status = status
        elif lowered.startswith("source:"):
            query.source = lowered[7:]
        elif lowered.startswith("reason:"):
            query.reason = lowered[7:]
        elif lowered.startswith("score"):
            match = _SCORE.match(lowered)
            if not match:
                raise ValueError(f"cannot read {token!r}: write e.g. score>=7")
            query.score_ops.append((match.group(1), float(match.group(2))))
        elif lowered == "is:dup":
            query.only_dup = True
        elif lowered == "is:marked":
            query.only_marked = True
        else:
            query.words.append(lowered)
    return query


def with_status(text: str, status: str | None) -> str:
    """The search text with its status: filter replaced (None removes it)."""
    kept = [t for t in text.split() if not t.lower().startswith("status:")]
    return " ".join(kept + ([f"status:{status}"] if status else []))


_COMPARE = {">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__, "=": float.__eq__}


def matches(pair: Pair, query: Query, duplicates: set[str], marked: set[str]) -> bool:
    if query.status and pair.status != query.status:
        return False
    if query.reason and query.reason not in pair.reason.lower():
        return False
    if query.source and query.source not in pair.source.lower():
        return False
    if query.only_dup and pair.id not in duplicates:
        return False
    if query.only_marked and pair.id not in marked:
        return False
    if query.score_ops:
        score = pair_score(pair)
        if score is None or not all(_COMPARE[op](float(score), limit) for op, limit in query.score_ops):
            return False
    if query.words:
        text = (pair.question + "\n" + pair.answer).lower()
        if not all(word in text for word in query.words):
            return False
    return True


def filter_pairs(pairs: Iterable[Pair], query: Query, duplicates: set[str] = frozenset(),
                 marked: set[str] = frozenset()) -> list[Pair]:
    if query.empty:
        return list(pairs)
    return [p for p in pairs if matches(p, query, duplicates, marked)]


def length_stats(rows: list[Pair]) -> str:
    """Characters of questions and answers among the shown rows: mean, median, max."""
    if not rows:
        return "no rows"
    q = [len(p.question) for p in rows]
    a = [len(p.answer) for p in rows]
    return (f"Q chars avg {sum(q) / len(q):.0f} med {statistics.median(q):.0f} max {max(q)} · "
            f"A chars avg {sum(a) / len(a):.0f} med {statistics.median(a):.0f} max {max(a)}")

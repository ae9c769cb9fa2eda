"""Duplicate detection for QA pairs: normalized exact matches and near-duplicates.

Exact: questions and answers compared after lower-casing, folding white space and
dropping punctuation. Near: Jaccard similarity of word 3-shingles of the question,
estimated with MinHash and found with LSH banding, so 100k pairs take seconds,
not the hours a pairwise comparison would.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
import zlib
from typing import Iterable, Sequence

import numpy as np

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation dropped, white space folded.

    Cached: a generated pair's question and answer are normalized by each check in turn (shape,
    duplicates, support), and this was a third of the generator's own time per pair."""
    text = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()  # same on ASCII
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


_SENTENCE_PUNCT = re.compile(r"[^\w\s#+%$€£¥&@/*=<>^~|\\]", re.UNICODE)
"""What an exact duplicate may differ in: punctuation that does not change the meaning ("What is X?",
"what is x"), not the symbols that do ("C", "C#" and "C++"; "5" and "5%")."""


def pair_key(question: str, answer: str) -> str:
    """The key two pairs share when they are the same but for case, spacing and punctuation."""
    return _exact_text(question) + "\x00" + _exact_text(answer)


def _exact_text(text: str) -> str:
    text = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _SENTENCE_PUNCT.sub(" ", text)).strip()


def question_key(question: str) -> str:
    return normalize(question)


# MinHash: NUM_PERM hash functions, BANDS bands of ROWS rows. With 16 bands of 4 rows,
# pairs at Jaccard 0.7 are found with probability ~0.98, pairs at 0.3 rarely.
NUM_PERM, BANDS, ROWS = 64, 16, 4
_PRIME = (1 << 61) - 1
_rng = np.random.default_rng(1234)
_A = _rng.integers(1, _PRIME, NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, _PRIME, NUM_PERM, dtype=np.uint64)


def _shingles(text: str, size: int = 3) -> set[int]:
    words = normalize(text).split()
    if len(words) < size:
        grams = [" ".join(words)] if words else []
    else:
        grams = [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]
    # CRC-32: stable across runs (unlike hash()) and several times cheaper than a cryptographic digest;
    # the shingles stay in memory, and a collision only makes two different word triples count as one.
    return {zlib.crc32(g.encode()) for g in grams}


def _signature(shingles: set[int]) -> np.ndarray:
    if not shingles:
        return np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    values = np.fromiter(shingles, dtype=np.uint64)
    # (a*x + b) mod p, in uint64 arithmetic: the overflow wraps consistently for every text.
    hashed = (np.outer(_A, values) + _B[:, None]) % np.uint64(_PRIME)
    return hashed.min(axis=1)


def _band_keys(shingles: set[int]) -> list[tuple[int, bytes]]:
    """The LSH bucket keys of a text: its MinHash signature cut into BANDS bands of ROWS values."""
    raw, width = _signature(shingles).tobytes(), ROWS * 8  # slicing bytes beats slicing the array
    return [(band, raw[band * width:(band + 1) * width]) for band in range(BANDS)]


def jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def near_duplicate_groups(texts: Sequence[str], threshold: float = 0.7) -> list[list[int]]:
    """Groups (lists of indexes into `texts`) of texts whose shingle Jaccard is at least `threshold`.

    Candidates come from LSH buckets; each candidate pair is confirmed with the
    exact Jaccard, so a reported group never holds a false match.
    """
    shingles = [_shingles(t) for t in texts]
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for index, sh in enumerate(shingles):
        if not sh:
            continue
        for key in _band_keys(sh):
            buckets.setdefault(key, []).append(index)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) < 2:
            continue
        first = members[0]
        for other in members[1:]:
            pair = (first, other)
            if pair in checked:
                continue
            checked.add(pair)
            sa, sb = shingles[first], shingles[other]
            if len(sa & sb) / len(sa | sb) >= threshold:
                parent[find(other)] = find(first)
    groups: dict[int, list[int]] = {}
    for index in range(len(texts)):
        groups.setdefault(find(index), []).append(index)
    return [g for g in groups.values() if len(g) > 1]


class ExactKeys:
    """The exact-duplicate keys of the pairs seen so far, 8 bytes of digest each: what an import of
    hundreds of thousands of rows needs (no near-duplicate structures, a few MB for 200k pairs)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self._digests: set[int] = set()
        for question, answer in pairs:
            self.add_if_new(question, answer)

    def add_if_new(self, question: str, answer: str) -> bool:
        """Remember a pair; False when an equal one (after normalization) was seen before."""
        digest = int.from_bytes(hashlib.blake2b(pair_key(question, answer).encode(), digest_size=8).digest(), "big")
        if digest in self._digests:
            return False
        self._digests.add(digest)
        return True


class DuplicateIndex:
    """Remembers the pairs seen so far and says whether a new one repeats one of them.

    Used by imports and by the generator: `exact` catches the same pair again,
    `near` the same question reworded slightly.
    """

    MAX_CANDIDATES = 256
    """Candidates confirmed per lookup. Templated questions fill LSH buckets; past this
    many distinct candidates without a match, a near-duplicate is very unlikely and the
    scan would cost more than it finds."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = (), near_threshold: float = 0.8):
        self.keys: set[str] = set()
        self.near_threshold = near_threshold
        self._questions: list[set[int]] = []
        self._buckets: dict[tuple[int, bytes], list[int]] = {}
        self._last: tuple[str, set[int], list[tuple[int, bytes]]] | None = None
        for question, answer in pairs:
            self.add(question, answer)

    def _fingerprint(self, question: str) -> tuple[set[int], list[tuple[int, bytes]]]:
        """Shingles and band keys of a question; the last one is kept, since a check
        (is_near) is usually followed by add() of the same question."""
        if self._last is not None and self._last[0] == question:
            return self._last[1], self._last[2]
        sh = _shingles(question)
        bands = _band_keys(sh) if sh else []
        self._last = (question, sh, bands)
        return sh, bands

    def add(self, question: str, answer: str) -> None:
        self.keys.add(pair_key(question, answer))
        sh, bands = self._fingerprint(question)
        index = len(self._questions)
        self._questions.append(sh)
        for key in bands:
            self._buckets.setdefault(key, []).append(index)

    def is_exact(self, question: str, answer: str) -> bool:
        return pair_key(question, answer) in self.keys

    def is_near(self, question: str) -> bool:
        sh, bands = self._fingerprint(question)
        seen: set[int] = set()
        for key in bands:
            for index in self._buckets.get(key, ()):
                if index in seen:
                    continue
                if len(seen) >= self.MAX_CANDIDATES:
                    return False
                seen.add(index)
                other = self._questions[index]
                if len(sh & other) / len(sh | other) >= self.near_threshold:
                    return True
        return False

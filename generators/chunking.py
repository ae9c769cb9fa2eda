"""Splitting document text into overlapping chunks along paragraph boundaries."""

from __future__ import annotations

import re

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")


def paragraphs(text: str) -> list[str]:
    """The paragraphs of a text (blank-line separated), white space inside each folded."""
    return [" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def _pieces(paragraph: str, limit: int) -> list[str]:
    """A paragraph longer than `limit` cut at sentence ends, then at word ends, then hard."""
    if len(paragraph) <= limit:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def split_text(text: str, chunk_chars: int, overlap: int) -> list[str]:
    """Chunks of at most `chunk_chars` characters made of whole paragraphs.

    Each chunk after the first starts with the last paragraphs of the one before,
    as many as fit in `overlap` characters, so a fact split across a boundary is
    still seen whole once. Paragraphs longer than a chunk are cut at sentence ends.
    """
    units = [piece for p in paragraphs(text) for piece in _pieces(p, chunk_chars)]
    chunks: list[str] = []
    current: list[str] = []

    def size(parts: list[str]) -> int:
        return sum(len(p) for p in parts) + 2 * max(0, len(parts) - 1)

    for unit in units:
        if current and size(current + [unit]) > chunk_chars:
            chunks.append("\n\n".join(current))
            carried: list[str] = []
            for previous in reversed(current):
                if size([previous] + carried) > overlap:
                    break
                carried.insert(0, previous)
            while carried and size(carried + [unit]) > chunk_chars:
                carried.pop(0)
            current = carried
        current.append(unit)
    if current:
        chunks.append("\n\n".join(current))
    return chunks

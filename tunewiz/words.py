"""Counts in messages, in the right number ("1 request", "2 requests")."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str = "") -> str:
    """`count` and the noun, plural unless the count is 1 (`plural` for nouns not made with an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"

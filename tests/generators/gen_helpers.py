"""Helpers of the generator tests (a module of its own name: several test folders have a conftest)."""

from __future__ import annotations

from pathlib import Path


def write_chunks(project, texts: list[str], name: str = "doc.md") -> Path:
    """A document whose chunks are exactly `texts`: one paragraph each, padded to the chunk size."""
    size = max(200, max(len(t) for t in texts) + 2)
    padded = [t if len(t) == size else f"{t} {'~' * (size - len(t) - 1)}" for t in texts]
    path = project.root / name
    path.write_text("\n\n".join(padded), encoding="utf-8")
    project.set("generator.documents", [name])
    project.set("generator.chunk_chars", size)
    project.set("generator.chunk_overlap", 0)
    project.save()
    return path

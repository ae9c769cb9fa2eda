"""Importing a file of pairs into a project: read, drop duplicates, append."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunewiz.dataset import PairStore
from tunewiz.dedup import DuplicateIndex
from tunewiz.formats import RowProblem, read_pairs


@dataclass
class ImportReport:
    file: Path
    added: int = 0
    duplicates: int = 0
    """Rows that repeat a pair already in the project or earlier in the file (after normalization)."""
    problems: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.file}: added {self.added} pairs"]
        if self.duplicates:
            parts.append(f"skipped {self.duplicates} duplicates")
        if self.problems:
            parts.append(f"skipped {len(self.problems)} bad rows")
        return ", ".join(parts)


def import_file(store: PairStore, path: str | Path, status: str = "pending") -> ImportReport:
    """Add the pairs of `path` to `store`; bad rows are reported, duplicates counted, nothing removed."""
    path = Path(path)
    result = read_pairs(path)
    report = ImportReport(file=path, problems=result.problems)
    seen = DuplicateIndex((p.question, p.answer) for p in store)
    fresh = []
    for pair in result.pairs:
        if seen.is_exact(pair.question, pair.answer):
            report.duplicates += 1
            continue
        seen.add(pair.question, pair.answer)
        pair.status = status
        fresh.append(pair)
    store.add(fresh)
    report.added = len(fresh)
    return report

"""Importing a file of pairs into a project: read, drop duplicates, append."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tunewiz.dataset import Pair, PairStore, prompt_text
from tunewiz.dedup import ExactKeys
from tunewiz.errors import disk_error, is_disk_error
from tunewiz.formats import RowProblem, iter_pairs
from tunewiz.words import counted


@dataclass
class ImportReport:
    file: Path
    added: int = 0
    duplicates: int = 0
    """Rows that repeat a pair already in the project or earlier in the file (after normalization)."""
    problems: list[RowProblem] = field(default_factory=list)
    conversations: int = 0
    """Added samples of more than one turn, and their user turns (`turns`)."""
    turns: int = 0
    notices: list[str] = field(default_factory=list)
    """What the store had to do to keep earlier data safe (a torn last line set aside)."""
    statuses: Counter = field(default_factory=Counter)
    """The added pairs by status (the file's own, unless the import set one)."""

    @property
    def skipped(self) -> list[RowProblem]:
        return [p for p in self.problems if p.skipped]

    def summary(self) -> str:
        """One line; a file of which nothing could be imported says so first."""
        by_kind = Counter(p.kind for p in self.skipped)
        # A kind is named in the plural ("bad rows", "tool turns"): one of it in the singular.
        kinds = ", ".join(counted(n, kind[:-1], kind) if kind.endswith("s") else f"{n} {kind}"
                          for kind, n in by_kind.most_common())
        if not self.added and not self.duplicates and self.skipped:
            return (f"{self.file}: nothing could be imported: " + ("its one row was" if len(self.skipped) == 1 else
                    f"all {len(self.skipped)} rows were") + f" skipped ({kinds})")
        parts = [f"{self.file}: added {counted(self.added, 'pair')}" if not self.conversations else
                 f"{self.file}: added {self.added} samples ({self.added - self.conversations} QA pairs, "
                 f"{self.conversations} conversations of {self.turns} turns)"]
        if set(self.statuses) - {"pending"}:
            parts[0] += " (" + ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items())) \
                + ", as the file says)"
        if self.duplicates:
            parts.append(f"skipped {counted(self.duplicates, 'duplicate')}")
        if self.skipped:
            parts.append(f"skipped {kinds}")
        return ", ".join(parts)


def typed_path(text: str) -> Path:
    """The file a person typed or dropped into a field: a terminal's drag and drop and a shell's tab
    completion write it quoted ('/my data/qa.csv') or with escaped spaces (/my\\ data/qa.csv); ~ is home;
    a relative path is from the current folder."""
    text = text.strip()
    if not Path(text).expanduser().exists():
        try:
            words = shlex.split(text)
        except ValueError:  # an unclosed quote: the text as typed, said missing by the import
            words = []
        if len(words) == 1:
            text = words[0]
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def import_file(store: PairStore, path: str | Path, status: str | None = None,
                encoding: str | None = None, chosen: bool = False) -> ImportReport:
    """Add the pairs of `path` to `store`; bad rows are reported, duplicates counted, nothing removed.

    Each pair gets `status`, or when that is None the status its record carries (tunewiz's own
    JSONL and CSV exports: a rejected pair stays rejected, and untrained), else pending.

    The file streams into the journal (no list of all its pairs is held), all or nothing: an
    unreadable file, a failed write or Ctrl-C leave the store's journal as it was."""
    path = Path(path)
    report = ImportReport(file=path)
    seen = ExactKeys((prompt_text(p), p.answer) for p in store)

    def fresh() -> Iterator[Pair]:
        for item in iter_pairs(path, encoding, chosen):
            if isinstance(item, RowProblem):
                report.problems.append(item)
            elif not seen.add_if_new(prompt_text(item), item.answer):
                report.duplicates += 1
            else:
                if status is not None:
                    item.status, item.reason = status, ""
                report.statuses[item.status] += 1
                if item.history:
                    report.conversations += 1
                    report.turns += item.turns
                yield item

    before = len(store.notices)
    try:
        report.added = store.append_pairs(fresh())
    except OSError as exc:
        if not is_disk_error(exc):
            raise
        raise disk_error(exc, f"nothing was imported from {path}; the project's pairs are as they were") from None
    report.notices = store.notices[before:]
    return report

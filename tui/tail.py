"""Following files that another process appends to (metrics.jsonl, train.log).

Each call returns only the complete lines written since the last call; a line
still being written stays buffered until its newline arrives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FileTail:
    def __init__(self, path: Path, start_at_end: bool = False) -> None:
        self.path = Path(path)
        self.offset = 0
        self.partial = b""
        if start_at_end:
            try:
                self.offset = self.path.stat().st_size
            except OSError:
                pass

    def read_lines(self, max_bytes: int = 4 << 20) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, 2)
                if size < self.offset:  # replaced or truncated: start over
                    self.offset, self.partial = 0, b""
                handle.seek(self.offset)
                data = handle.read(max_bytes)
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def read_records(self) -> list[dict[str, Any]]:
        """New JSON records (for metrics.jsonl); unreadable lines are skipped."""
        records = []
        for line in self.read_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

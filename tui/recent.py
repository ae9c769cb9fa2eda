"""The list of recently opened projects: `$XDG_CONFIG_HOME/tunewiz/recent.json`.

Kept outside every project (it is about the person, not the project) and written
atomically; a missing or broken file is an empty list, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tunewiz.project import PROJECT_FILE, atomic_write_text

MAX_RECENT = 10


def recent_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tunewiz" / "recent.json"


def load_recent() -> list[Path]:
    """Recent project folders, newest first, only those that still hold a project."""
    try:
        entries = json.loads(recent_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    paths = [Path(e) for e in entries if isinstance(e, str)]
    return [p for p in paths if (p / PROJECT_FILE).exists()]


def remember(project_dir: Path) -> None:
    """Put a project at the top of the recent list."""
    folder = Path(project_dir).resolve()
    entries = [p for p in load_recent() if p != folder]
    entries.insert(0, folder)
    try:
        atomic_write_text(recent_file(), json.dumps([str(p) for p in entries[:MAX_RECENT]], indent=1) + "\n")
    except OSError:
        pass  # a read-only home must not stop anyone from working

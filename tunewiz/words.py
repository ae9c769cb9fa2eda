"""Counts in messages, in the right number ("1 request", "2 requests")."""

from __future__ import annotations

import re
import shlex


def counted(count: int, noun: str, plural: str = "") -> str:
    """`count` and the noun, plural unless the count is 1 (`plural` for nouns not made with an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


PROJECT_COMMANDS = frozenset({
    "chat", "checkpoints", "config", "export", "export-data", "generate", "hardware", "import", "logs", "pairs",
    "pick", "presets", "preview", "providers", "push", "rewordings", "runs", "status", "stop", "train"})
"""The commands that take -p/--project (the CLI checks each command it registers against this)."""


def naming_project(text: str, folder: str) -> str:
    """`text` with each command it names (`tunewiz CMD ...` in backticks) carrying `-p FOLDER`, for a user
    whose shell is not inside the project (CLI, wizard); '' as `folder`: the text as it is."""
    if not folder:
        return text
    option = f" -p {shlex.quote(folder)}"

    def named(match: re.Match) -> str:
        command, rest = match.group(1), match.group(2)
        if command not in PROJECT_COMMANDS or " -p " in rest or " --project " in rest:
            return match.group(0)
        return f"`tunewiz {command}{option}{rest}`"

    return re.sub(r"`tunewiz ([a-z-]+)([^`]*)`", named, text)

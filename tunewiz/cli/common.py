"""Helpers shared by the subcommands: finding the project, printing tables."""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import TextIO

from tunewiz.project import PROJECT_FILE, Project, find_project_root
from tunewiz.words import PROJECT_COMMANDS, naming_project


def add_project_arg(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.split()[-1]
    if command not in PROJECT_COMMANDS:  # the wizard names commands from that list too
        raise AssertionError(f"add '{command}' to tunewiz.words.PROJECT_COMMANDS")
    parser.add_argument("-p", "--project", default=".", metavar="DIR",
                        help="the project folder (default: the current folder, or the nearest one above it "
                             "that holds tunewiz.toml)")


def open_project(args: argparse.Namespace, write: bool = False, holder: str = "tunewiz") -> Project:
    """Load the project named by --project (by default the one holding the current folder, as git finds
    its repository: the commands tunewiz suggests work from the project's subfolders too); with
    write=True also take its write lock."""
    project = Project.load(project_folder(args.project))
    if write:
        project.lock(holder)
    return project


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def project_folder(given: str) -> Path:
    """The folder a project option names; "." (the default) is the nearest folder from here up that
    holds tunewiz.toml, said relative to here."""
    folder = Path(given)
    if given == "." and not (folder / PROJECT_FILE).is_file():
        found = find_project_root(folder)
        folder = Path(os.path.relpath(found)) if found else folder
    return folder


def project_option(args: argparse.Namespace) -> str:
    """The project folder the command was given when the current folder is not inside it, else "":
    messages name commands as typed inside the project, where it is found on its own."""
    folder = getattr(args, "project", None)
    if not isinstance(folder, str) or folder == ".":
        return ""
    try:
        if Path.cwd().resolve().is_relative_to(Path(folder).expanduser().resolve()):
            return ""
    except OSError:
        return ""
    return folder


def for_shell(text: str, args: argparse.Namespace) -> str:
    """`text` with the commands it names (`tunewiz CMD ...` in backticks) carrying the -p DIR the user
    gave, when run from outside that project's folder."""
    return naming_project(text, project_option(args))


class NamingProject(io.TextIOBase):
    """Standard output with `for_shell` applied to every write: whatever a command prints (its own
    lines, or a summary, a note or advice the core wrote) names commands that work from where the user
    is. print() writes a line's text in one call, so a named command is never split between writes."""

    def __init__(self, inner: TextIO, args: argparse.Namespace):
        super().__init__()
        self.inner, self.args = inner, args

    def write(self, text: str) -> int:
        self.inner.write(for_shell(text, self.args))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding

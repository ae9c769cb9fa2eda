"""Helpers shared by the subcommands: finding the project, printing tables."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tunewiz.project import PROJECT_FILE, Project, find_project_root


def add_project_arg(parser: argparse.ArgumentParser) -> None:
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

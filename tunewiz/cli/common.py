"""Helpers shared by the subcommands: finding the project, printing tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunewiz.project import Project


def add_project_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--project", default=".", metavar="DIR",
                        help="the project folder (default: the current folder)")


def open_project(args: argparse.Namespace, write: bool = False, holder: str = "tunewiz") -> Project:
    """Load the project named by --project; with write=True also take its write lock."""
    project = Project.load(Path(args.project))
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

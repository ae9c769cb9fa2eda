"""A new project, as `tunewiz new` and the wizard's welcome screen make it: settings, first pairs, or nothing.

Both front ends ask for the same things (a folder, a name, a base model, what the data is for, where
pairs come from) and render what this returns; neither creates a project on its own.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewiz.dataset import PairStore
from tunewiz.errors import TunewizError
from tunewiz.imports import ImportReport, import_file
from tunewiz.project import PROJECT_FILE, Project, ProjectError, create_project


@dataclass
class NewProject:
    project: Project
    imported: ImportReport | None
    """What importing the first file of pairs did (None when no file was given)."""


def project_values(*, name: str = "", base_model: str = "", kind: str = "", topic: str = "",
                   documents: list[str] | None = None) -> dict[str, Any]:
    """The dotted settings of a new project from what the user gave (blanks keep the defaults)."""
    values: dict[str, Any] = {}
    for key, value in (("project.name", name), ("base_model.model", base_model), ("dataset.kind", kind),
                       ("generator.topic", topic)):
        if value.strip():
            values[key] = value.strip()
    if documents:
        paths = [Path(d.strip()).expanduser() for d in documents if d.strip()]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:  # found now, not when generation starts
            raise TunewizError(f"documents: no such file or folder: {', '.join(missing)}")
        values["generator.documents"] = [str(path.resolve()) for path in paths]
    return values


def guess_source(value: str) -> tuple[str, str]:
    """Where pairs come from when the user typed `value` without saying what it is: ('file', path) for a
    file of pairs, ('documents', path) for a folder or another file, ('topic', text) for anything else
    that does not look like a path; a path that is not there is an error, not a topic."""
    from tunewiz.formats import PAIR_FILE_SUFFIXES
    from tunewiz.imports import typed_path

    path = typed_path(value)
    if path.is_dir():
        return "documents", str(path)
    if path.is_file():
        return ("file" if path.suffix.lower() in PAIR_FILE_SUFFIXES else "documents"), str(path)
    text = value.strip()
    if "/" in text or "\\" in text or Path(text).suffix.lower() in PAIR_FILE_SUFFIXES:
        raise TunewizError(f"{path}: no such file or folder (a topic is words, not a path)")
    return "topic", text


def refuse_existing(root: Path) -> None:
    if (root / PROJECT_FILE).exists():
        raise ProjectError(f"{root / PROJECT_FILE}: a project already exists here; nothing was changed")


def new_project(root: str | Path, values: dict[str, Any], pairs_file: str | Path | None = None) -> NewProject:
    """Create the project at `root` with `values` and import `pairs_file` into it.

    All or nothing: on a bad value, an unreadable file or Ctrl-C the folder this call created is
    removed again (a folder that existed before keeps whatever it held) and the error says so."""
    root = Path(root).expanduser()
    refuse_existing(root)
    existed = root.exists()
    try:
        project = create_project(root, values)
        imported = import_file(PairStore(project.pairs_path), Path(pairs_file).expanduser()) if pairs_file else None
    except BaseException as exc:
        if not existed:
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, (TunewizError, ValueError, OSError)):
            raise TunewizError(f"{exc}; no project was created") from None
        raise  # Ctrl-C, or a bug with its traceback: still nothing half-made left behind
    return NewProject(project, imported)

"""The headless core never imports Textual; commands that don't train never import torch."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = ["tunewiz.project", "tunewiz.dataset", "tunewiz.formats", "tunewiz.imports", "tunewiz.status",
                "tunewiz.templates", "tunewiz.runs", "tunewiz.cli"]
HEAVY = ["textual", "torch", "transformers", "peft"]


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_core_does_not_import_textual_or_torch():
    loaded = loaded_after("\n".join(f"import {m}" for m in CORE_MODULES))
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_generators_do_not_import_textual_or_torch():
    loaded = loaded_after("import tunewiz.generators, pkgutil, importlib\n"
                          "for m in pkgutil.iter_modules(tunewiz.generators.__path__):\n"
                          "    importlib.import_module('tunewiz.generators.' + m.name)")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_building_the_cli_and_status_stay_light(project):
    loaded = loaded_after("from tunewiz.cli import build_parser; build_parser()\n"
                          f"from tunewiz.project import Project; from tunewiz.status import project_status\n"
                          f"project_status(Project.load({str(project.root)!r}))")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_installed_names_live_under_tunewiz():
    """tui/ and generators/ are importable only as tunewiz.tui and tunewiz.generators."""
    code = ("import importlib.util, os\nos.chdir('/')\n"
            "print(importlib.util.find_spec('tui'), importlib.util.find_spec('generators'),"
            " importlib.util.find_spec('tunewiz.tui') is not None, importlib.util.find_spec('tunewiz.generators') is not None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert done.stdout.split() == ["None", "None", "True", "True"]

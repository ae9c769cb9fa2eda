"""The layers of design.md, enforced: every import (function-level ones included) goes down a layer,
or sideways only where the design allows it, and no two modules import each other.

    front ends   tunewiz.cli · tunewiz.tui · tunewiz.demo
    services     tunewiz.generators · training · checkpoints · samples · chat · export
    foundation   everything else (project, schema, dataset, templates, runs, ...)

Inside the front ends `cli` may use `tui` and `demo`; inside the services `export` may use `samples`
and `chat` (the smoke test asks the model). The check reads the source (ast), so an import hidden in
a function counts; a test plants a forbidden import in a copy of the package and expects a failure.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"tunewiz": ROOT / "tunewiz", "tunewiz.tui": ROOT / "tui", "tunewiz.generators": ROOT / "generators"}
FRONT_ENDS = ("tunewiz.cli", "tunewiz.tui", "tunewiz.demo", "tunewiz.console", "tunewiz.__main__")
SERVICES = ("tunewiz.generators", "tunewiz.training", "tunewiz.samples", "tunewiz.chat", "tunewiz.export")
# tunewiz.checkpoints (the checkpoint table and its pick) is foundation: it only reads run folders,
# and export, samples and chat each act on the checkpoint it picks.
SIDEWAYS = {("tunewiz.__main__", "tunewiz.cli"), ("tunewiz.cli", "tunewiz.tui"), ("tunewiz.cli", "tunewiz.demo"),
            ("tunewiz.cli", "tunewiz.console"), ("tunewiz.demo", "tunewiz.console"),
            ("tunewiz.export", "tunewiz.samples"), ("tunewiz.export", "tunewiz.chat"),
            ("tunewiz.samples", "tunewiz.chat")}
"""(importer's room, imported room) pairs allowed within one layer: `console` holds the progress lines
the CLI and the demo both print; samples and the export's smoke test ask models as chat does."""


def room(module: str) -> tuple[int, str]:
    """(layer, room): 2 front end, 1 service, 0 foundation; the room is the top-level unit."""
    for layer, rooms in ((2, FRONT_ENDS), (1, SERVICES)):
        for name in rooms:
            if module == name or module.startswith(name + "."):
                return layer, name
    return 0, module


def modules(packages: dict[str, Path]) -> dict[str, Path]:
    found = {}
    for package, folder in packages.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports_of(path: Path, module: str) -> set[str]:
    """Every tunewiz module `path` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "tunewiz" or name.startswith("tunewiz.")}


def violations(packages: dict[str, Path]) -> list[str]:
    known = modules(packages)
    graph = {name: {i for i in imports_of(path, name) if i in known and i != name} for name, path in known.items()}
    problems = []
    for importer, imported in sorted((a, b) for a, bs in graph.items() for b in bs):
        (layer_a, room_a), (layer_b, room_b) = room(importer), room(imported)
        if imported == "tunewiz" or importer == "tunewiz":
            continue  # the package root holds only the version
        if layer_b > layer_a:
            problems.append(f"{importer} imports {imported}: up a layer")
        elif layer_b == layer_a and layer_a > 0 and room_a != room_b and (room_a, room_b) not in SIDEWAYS:
            problems.append(f"{importer} imports {imported}: sideways between {room_a} and {room_b}")
        if importer in graph.get(imported, ()) and importer < imported:
            problems.append(f"{importer} and {imported} import each other")
    return problems


def test_the_layers_hold():
    assert violations(PACKAGES) == []


def test_a_planted_forbidden_import_is_caught(tmp_path):
    copies = {name: tmp_path / folder.name for name, folder in PACKAGES.items()}
    for name, folder in PACKAGES.items():
        shutil.copytree(folder, copies[name], ignore=shutil.ignore_patterns("__pycache__"))
    dataset = copies["tunewiz"] / "dataset.py"
    dataset.write_text(dataset.read_text() + "\n\ndef _planted():\n    from tunewiz.cli import main  # noqa\n")
    assert "tunewiz.dataset imports tunewiz.cli: up a layer" in violations(copies)


@pytest.mark.parametrize("module,layer", [("tunewiz.cli.data_cmds", 2), ("tunewiz.export.gguf", 1),
                                          ("tunewiz.dataset", 0), ("tunewiz.tui.app", 2)])
def test_rooms(module, layer):
    assert room(module)[0] == layer


def test_only_the_runs_module_reads_or_writes_run_json():
    """run.json is one typed contract (tunewiz.runs.RunSpec): no other module names or opens it."""
    offenders = []
    for name, path in modules(PACKAGES).items():
        if name == "tunewiz.runs":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == "run.json":
                offenders.append(f"{name}: the literal 'run.json'")
            elif isinstance(node, ast.Name) and node.id == "RUN_CONFIG_FILE":
                offenders.append(f"{name}: RUN_CONFIG_FILE")
            elif (isinstance(node, ast.Attribute) and node.attr in ("read_text", "write_text", "open", "read_bytes")
                  and isinstance(node.value, ast.Attribute) and node.value.attr == "config_path"):
                offenders.append(f"{name}: opens config_path")
    assert offenders == []

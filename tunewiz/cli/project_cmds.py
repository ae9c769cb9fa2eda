"""`tunewiz new`, `status`, `config` and `open`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tunewiz.cli.common import add_project_arg, open_project, project_folder
from tunewiz.errors import TunewizError, redact_urls


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create a project folder",
                       description="Create a project. On a terminal, asks for whatever the flags leave out.")
    p.add_argument("dir", help="the folder to create")
    p.add_argument("--name", help="project name (default: the folder's name)")
    p.add_argument("--base-model", help="model to fine-tune: smollm2-135m, a model folder, a .gguf file or a hub id")
    p.add_argument("--topic", help="generate pairs about this topic")
    p.add_argument("--documents", nargs="+", metavar="PATH", help="generate pairs from these documents or folders")
    p.add_argument("--import", dest="import_file", metavar="FILE", help="import pairs from a CSV/JSONL/JSON file")
    p.add_argument("--kind", choices=("auto", "facts", "skill"),
                   help="what the pairs teach: facts (knowledge to recall), skill (a style, format or task), "
                        "or auto (decided from the data when training starts; the default)")
    p.add_argument("-y", "--yes", action="store_true", help="ask nothing; use the flags and defaults")
    p.set_defaults(handler=cmd_new)

    p = sub.add_parser("status", help="where a project stands, step by step")
    p.add_argument("dir", nargs="?", default=None, help="the project folder (default: here)")
    add_project_arg(p)  # -p DIR as every other command takes it
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("config", help="show or change a project setting",
                       description="With no KEY, print the whole project file; with KEY, print one "
                                   "value; with KEY VALUE, check and save it. Keys are section.key.")
    add_project_arg(p)
    p.add_argument("key", nargs="?", help="e.g. hyperparameters.learning_rate")
    p.add_argument("value", nargs="?", help="the new value (lists: comma-separated)")
    p.set_defaults(handler=cmd_config)

    p = sub.add_parser("open", help="open the wizard (the default with no command)")
    p.add_argument("dir", nargs="?", default=None, help="a project folder to open")
    # -p as every other command takes it (not `project`: the wizard's output is no command's to re-word)
    p.add_argument("-p", "--project", dest="project_dir", metavar="DIR", help="the project folder to open")
    p.set_defaults(handler=cmd_open)


def _ask_missing(args: argparse.Namespace) -> None:
    """Fill what the flags left out by asking on the terminal (questionary)."""
    import questionary

    if args.name is None:
        args.name = questionary.text("Project name:", default=Path(args.dir).name).unsafe_ask()
    if args.base_model is None:
        args.base_model = questionary.text(
            "Base model (smollm2-135m, a model folder, a .gguf file or a hub id):",
            default="smollm2-135m").unsafe_ask()
    if args.topic is None and args.documents is None and args.import_file is None:
        source = questionary.select("Where do the questions and answers come from?", choices=[
            "A topic (an LLM writes them)", "My documents (an LLM writes them)",
            "A file I have (CSV, JSONL, JSON)", "Decide later"]).unsafe_ask()
        if source.startswith("A topic"):
            args.topic = questionary.text("Topic:").unsafe_ask()
        elif source.startswith("My documents"):
            args.documents = [questionary.path("Document or folder:").unsafe_ask()]
        elif source.startswith("A file"):
            args.import_file = questionary.path("File:").unsafe_ask()


def cmd_new(args: argparse.Namespace) -> int:
    from tunewiz.newproject import new_project, project_values, refuse_existing

    root = Path(args.dir)
    refuse_existing(root)
    if not args.yes and sys.stdin.isatty() and sys.stdout.isatty():
        try:
            _ask_missing(args)
        except KeyboardInterrupt:
            print("Cancelled: no changes were made.")
            return 130
    values = project_values(name=args.name or "", base_model=args.base_model or "", kind=args.kind or "",
                            topic=args.topic or "", documents=args.documents)
    try:
        made = new_project(root, values, args.import_file)
    except KeyboardInterrupt:
        print("Cancelled: no changes were made.")
        return 130
    if made.imported:
        print(made.imported.summary())
        for problem in made.imported.problems:
            print(f"  {args.import_file}: {problem.where}: {problem.reason}")
    print(f"Created {made.project.file}")
    folder = shlex.quote(str(root))
    if (values.get("generator.topic") or values.get("generator.documents")) and not made.imported:
        print(f"Next: tunewiz generate -p {folder} (an LLM writes the pairs)   ·   tunewiz open {folder}")
    else:
        print(f"Next: tunewiz status {folder}   ·   tunewiz open {folder}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from tunewiz.project import Project
    from tunewiz.status import project_status

    project = Project.load(project_folder(args.dir or args.project))
    for step in project_status(project):
        print(f"{step.title:<16} {step.state:<8} {step.summary}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import tomli_w

    from tunewiz.presets import apply_preset, mark_edited

    from tunewiz.project import check_dotted_key, parse_value

    if args.key is None:
        project = open_project(args)
        print(redact_urls(tomli_w.dumps(project.config.to_dict())), end="")
        return 0
    try:
        check_dotted_key(args.key)
    except ValueError as exc:
        raise TunewizError(str(exc)) from None
    section, _, key = args.key.partition(".")
    if args.value is None:
        project = open_project(args)
        if not key:  # a whole section, as the file writes it
            print(redact_urls(tomli_w.dumps({section: project.config.to_dict()[section]})), end="")
            return 0
        try:
            print(redact_urls(str(project.get(args.key))))
        except AttributeError:
            raise TunewizError(f"unknown key '{args.key}'") from None
        return 0
    if not key:
        raise TunewizError(f"{section} is a section: set one of its keys, as in "
                           f"`tunewiz config {section}.KEY VALUE` (`tunewiz config {section}` lists them)")
    project = open_project(args, write=True)
    try:
        try:
            value = parse_value(section, key, args.value)
        except ValueError as exc:
            raise TunewizError(f"{project.file}: {exc}") from None
        project.set(args.key, value)
        also = mark_edited(project, args.key)
        if args.key == "hyperparameters.preset" and value != "custom":  # as the wizard's preset select does
            changed = apply_preset(project, value)
            also = (f"applied the {value} preset: {len(changed)} values changed "
                    f"(`tunewiz presets {value}` lists them)")
        project.save()
    finally:
        project.unlock()
    print(redact_urls(f"{args.key} = {value!r}"))
    if also:
        print(also)
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    try:
        from tunewiz.tui.app import run_app
    except ModuleNotFoundError as exc:
        raise TunewizError(f"the wizard is not available ({exc})") from None
    from tunewiz.project import find_project_root

    # Inside a project folder (or below it) `tunewiz` opens that project; elsewhere the welcome screen.
    if args.dir and args.project_dir and Path(args.dir) != Path(args.project_dir):
        raise TunewizError(f"two project folders named ({args.dir} and -p {args.project_dir}): name one")
    folder = args.dir or args.project_dir or find_project_root(Path.cwd())
    return run_app(str(folder) if folder else None)

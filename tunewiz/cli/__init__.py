"""The `tunewiz` command: one subcommand per step, each in its own module.

Each module in COMMAND_MODULES has `register(subparsers)`; handlers import their
heavy dependencies inside, so `tunewiz --help` and the data commands start fast
and never import torch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from tunewiz import __version__
from tunewiz.errors import TunewizError, disk_error, is_disk_error, redact_urls

COMMAND_MODULES = (
    "tunewiz.cli.project_cmds",   # new, status, config, open
    "tunewiz.cli.data_cmds",      # import, export-data, pairs
    "tunewiz.cli.generate_cmds",  # generate, providers
    "tunewiz.cli.train_cmds",     # hardware, preview, train, runs, logs, stop
    "tunewiz.cli.export_cmds",    # checkpoints, pick, export, chat
    "tunewiz.cli.demo_cmds",      # demo
)


WIZARD_MODULES = ("tunewiz.cli.project_cmds",)
"""What `tunewiz` and `tunewiz open` need: the other commands' modules cost ~40 ms of the wizard's start."""


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunewiz",
        description="From a topic, documents or a CSV of questions to a fine-tuned model for llama.cpp "
                    "and Ollama. With no command, opens the wizard.")
    parser.add_argument("--version", action="version", version=f"tunewiz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _unrecognized(args: argparse.Namespace, words: list[str], extra: list[str]) -> str:
    """argparse's message, and when the one word left over is a project folder, how to name it
    (`tunewiz pairs myproj` reads as naturally as `tunewiz status myproj`)."""
    import shlex
    from pathlib import Path

    from tunewiz.project import PROJECT_FILE

    message = f"unrecognized arguments: {' '.join(extra)}"
    if len(extra) == 1 and hasattr(args, "project") and (Path(extra[0]).expanduser() / PROJECT_FILE).is_file():
        rest = [w for w in words if w != extra[0]]
        message += (f"\n{extra[0]} is a project folder: name it with -p, as in "
                    f"tunewiz {shlex.join(rest[:1] + ['-p', extra[0]] + rest[1:])}")
    return message


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] in (["-p"], ["--project"]) and len(words) == 2:
        words = ["open", *words]  # `tunewiz -p DIR`: the wizard on that project, as `tunewiz open -p DIR`
    parser = build_parser(WIZARD_MODULES if words[:1] in ([], ["open"]) else COMMAND_MODULES)
    args, extra = parser.parse_known_args(words)
    if extra:
        parser.error(_unrecognized(args, words, extra))
    if args.command is None:
        args = parser.parse_args(["open", *words])
    from tunewiz.cli.common import NamingProject, for_shell, project_option

    try:
        if project_option(args):
            with contextlib.redirect_stdout(NamingProject(sys.stdout, args)):
                return int(args.handler(args) or 0)
        return int(args.handler(args) or 0)
    except TunewizError as exc:
        print(f"error: {for_shell(redact_urls(str(exc)), args)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`tunewiz pairs | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        if not is_disk_error(exc):
            raise
        # Commands turn the writes they can undo into their own message; this is the rest.
        print(f"error: {disk_error(exc, f'`tunewiz {args.command}` stopped there')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

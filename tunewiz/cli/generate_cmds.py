"""`tunewiz generate` and `tunewiz providers`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tunewiz.cli.common import add_project_arg, open_project, table
from tunewiz.console import ProgressBar
from tunewiz.errors import TunewizError, redact_urls
from tunewiz.generators.providers import PRESETS  # plain data: keeps `tunewiz --help` fast


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate question/answer pairs about a topic or from documents",
        description="Ask an LLM for question/answer pairs and add them to the project. Options given "
                    "here are saved to tunewiz.toml first. Pairs are stored as they arrive; Ctrl-C "
                    "stops cleanly and a re-run goes on where the last one stopped.")
    add_project_arg(p)
    p.add_argument("--n", type=int, metavar="N", help="pairs to generate from the topic (generator.num_pairs)")
    p.add_argument("--topic", help="generate about this topic (generator.topic)")
    p.add_argument("--documents", nargs="+", metavar="PATH",
                   help=".txt .md .html .pdf files or folders to generate from (generator.documents)")
    p.add_argument("--provider", choices=tuple(PRESETS), help="where pairs come from (generator.provider)")
    p.add_argument("--model", help="model name at the provider (generator.model)")
    p.add_argument("--base-url", help="OpenAI-compatible base URL (generator.base_url)")
    p.add_argument("--concurrency", type=int, metavar="N", help="requests in flight (generator.concurrency)")
    p.add_argument("--pairs-per-chunk", type=int, metavar="N", help="generator.pairs_per_chunk")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("providers", help="list the generation providers; --test checks the project's",
                       description="Presets of OpenAI-compatible servers. The API key is read from the "
                                   "environment variable named by generator.api_key_env, never stored.")
    add_project_arg(p)
    p.add_argument("--test", action="store_true", help="connect to the project's provider and ask it for a word")
    p.add_argument("--use", type=int, metavar="N",
                   help="make local model N of the list the project's generator (the list is printed without it)")
    p.add_argument("--download", action="store_true",
                   help="download a recommended instruct GGUF (1.5-3B, for this machine's memory) from the "
                        "Hugging Face hub, check its SHA-256 and make it the project's generator")
    p.set_defaults(handler=cmd_providers)


def _apply_options(project, args: argparse.Namespace) -> list[str]:
    """Set the options given on the command line; the `key = value` texts of those that changed."""
    wanted = {
        "generator.num_pairs": args.n, "generator.topic": args.topic, "generator.documents": args.documents,
        "generator.provider": args.provider, "generator.model": args.model,
        "generator.base_url": args.base_url, "generator.concurrency": args.concurrency,
        "generator.pairs_per_chunk": args.pairs_per_chunk,
    }
    if args.topic is not None and args.documents is None:
        wanted["generator.documents"] = []  # a topic on the command line means: from the topic
    changed = []
    for key, value in wanted.items():
        if value is None or project.get(key) == value:
            continue
        try:
            project.set(key, value)
        except ValueError as exc:
            raise TunewizError(str(exc)) from None
        changed.append(f"{key} = {value!r}")
    return changed


def cmd_generate(args: argparse.Namespace) -> int:
    from tunewiz.generators.runner import generate_pairs

    project = open_project(args, write=True, holder="tunewiz generate")
    changed = _apply_options(project, args)
    if changed:
        project.save()
        print(redact_urls("Saved to tunewiz.toml: " + "; ".join(changed)))
    g = project.config.generator
    what = f"{len(g.documents)} document path(s)" if g.documents else f"{g.num_pairs} pairs about {g.topic!r}"
    print(f"Generating {what} with {g.provider} (Ctrl-C stops cleanly).")

    stop = threading.Event()
    bar = ProgressBar(sys.stdout)

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set()
        bar.note("Stopping: finishing the writes (Ctrl-C again to stop at once)...")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        summary = generate_pairs(project, on_event=bar.update, stop=stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    for line in summary.lines():
        print(line)
    if summary.stopped:
        return 130
    return 1 if summary.chunks_failed else 0


def cmd_providers(args: argparse.Namespace) -> int:
    from tunewiz.generators.discovery import find_local_models
    from tunewiz.generators.providers import test_connection
    from tunewiz.project import Project

    if args.use is not None:
        return _use_local_model(args)
    if args.download:
        return _download_recommended(args)
    current = None
    try:
        project = Project.load(args.project)
        current = project.config.generator.provider
    except TunewizError:
        if args.test:
            raise
    rows = []
    for preset in PRESETS.values():
        mark = "*" if preset.name == current else ""
        rows.append([mark + preset.name, preset.label, preset.base_url or "-", preset.model or "-",
                     preset.api_key_env or "-"])
    print(table(rows, ["provider", "what", "base URL", "default model", "key from"]))
    if current:
        print("* the project's provider. Change it with `tunewiz config generator.provider NAME`.")
    print()
    models, skipped = find_local_models()
    _print_local_models(models, skipped, args)
    if args.test:
        print(test_connection(project))
    return 0


def _print_local_models(models, skipped, args: argparse.Namespace) -> None:
    from tunewiz.generators.discovery import propose
    from tunewiz.hardware import detect

    if not models:
        print("No local model found (servers on the usual ports; GGUF files in the Hugging Face cache, "
              "LM Studio's and Ollama's folders): the embedded provider serves the shipped SmolLM2. "
              "`tunewiz providers --download` fetches a better one (1-2 GB, online).")
    else:
        rows = [[str(i), m.provider, m.label, m.where,
                 f"{m.size_bytes / 1e9:.1f} GB" if m.size_bytes else "-",
                 f"{m.params_b:g}B" if m.params_b else "-"] for i, m in enumerate(models, 1)]
        print("Found on this machine:")
        print(table(rows, ["#", "provider", "model", "where", "file", "params"]))
    for item in skipped[:10]:
        print(f"skipped {item.path}: {item.reason}")
    if len(skipped) > 10:
        print(f"... and {len(skipped) - 10} more files skipped")
    if models:
        best = propose(models, detect().ram_available_mb * 2**20)
        if best is None:
            print("None of them is proposed: each needs more memory than is available (or is over 8B).")
        else:
            number = models.index(best) + 1
            print(f"Proposed: {number} ({best.provider}, {best.label}). `tunewiz providers --use {number}` "
                  "makes it the project's generator.")


def _use_local_model(args: argparse.Namespace) -> int:
    from tunewiz.generators.discovery import find_local_models

    models, _ = find_local_models()
    if not 1 <= args.use <= len(models):
        raise TunewizError(f"--use {args.use}: there is no local model {args.use}; "
                           + (f"`tunewiz providers` lists {len(models)}" if models else "none was found"))
    return _record_generator(args, models[args.use - 1])


def _download_recommended(args: argparse.Namespace) -> int:
    from tunewiz.generators.discovery import download, download_to_propose, downloaded
    from tunewiz.hardware import detect

    open_project(args)  # a bad --project is said before a download of gigabytes, not after
    wanted = download_to_propose(detect().ram_available_mb * 2**20)
    print(f"Downloading {wanted.repo}/{wanted.filename} (about {wanted.size_bytes / 1e9:.1f} GB) into the "
          "Hugging Face cache...")
    path = download(wanted)
    print(f"{path}: SHA-256 matches the one the hub publishes.")
    return _record_generator(args, downloaded(wanted, path))


def _record_generator(args: argparse.Namespace, chosen) -> int:
    from tunewiz.generators.discovery import use_model

    project = open_project(args, write=True)
    try:
        settings = use_model(project, chosen)
    finally:
        project.unlock()
    for key, value in settings.items():
        print(redact_urls(f"{key} = {value!r}"))
    print(f"The project generates with {chosen.label} ({chosen.provider}) now.")
    return 0

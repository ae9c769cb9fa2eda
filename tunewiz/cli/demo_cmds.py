"""`tunewiz demo`: the whole job offline on the embedded default."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole job offline: generate, fine-tune, pick, export, compare",
                       description="Creates a project from the velmora-handbook example, generates a few pairs "
                                   "with the embedded local model, fine-tunes SmolLM2-135M with LoRA, picks the "
                                   "best checkpoint, exports a GGUF with a Modelfile, smoke-tests it and prints "
                                   "base vs fine-tuned answers. No network, no key; about 5-10 minutes on 2 cores.")
    p.add_argument("dir", nargs="?", default="tunewiz-demo", help="the folder to create (default: tunewiz-demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the example's 60)")
    p.add_argument("--generate", type=int, default=None, metavar="N",
                   help="pairs to generate with the local model (default: the example's 4; 0 skips)")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from tunewiz.demo import DemoOptions, run_demo
    from tunewiz.errors import TunewizError

    if args.steps is not None and args.steps < 1:
        raise TunewizError("--steps must be at least 1")
    if args.generate is not None and args.generate < 0:
        raise TunewizError("--generate must be 0 or more")
    run_demo(DemoOptions(target=Path(args.dir), max_steps=args.steps, generate=args.generate))
    return 0

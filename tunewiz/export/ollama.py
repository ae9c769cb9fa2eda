"""Create an export's Ollama model with the `ollama` command, then ask it one question.

Ollama copies the GGUF into its own store (`ollama create NAME -f Modelfile`), so the model
runs as `ollama run NAME` from anywhere. The Modelfile the export wrote names the main GGUF;
another one (the best quality exported by default) gets its own `Modelfile.<type>`, beside it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tunewiz.errors import TunewizError
from tunewiz.exports import MODELFILE, ExportManifest

QUALITY_ORDER = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_1", "q5_0", "q4_k_m", "q4_k_s",
                 "q4_1", "q4_0", "iq4_nl", "iq4_xs", "q3_k_l", "q3_k_m", "q3_k_s", "q2_k")
"""GGUF types from the most faithful to the smallest (types not listed rank after these)."""
CREATE_TIMEOUT_S = 3600
"""`ollama create` copies the whole GGUF into Ollama's store: minutes for a multi-GB file."""
RUN_TIMEOUT_S = 600
"""The first `ollama run` loads the model."""


@dataclass
class OllamaModel:
    name: str
    gguf: str
    """The GGUF file it was created from."""
    question: str
    answer: str


def ollama_command() -> str | None:
    return shutil.which("ollama")


def require_ollama() -> str:
    """The `ollama` executable, or an error that says how to get it (checked before an export starts)."""
    command = ollama_command()
    if command is None:
        raise TunewizError("`ollama` is not on PATH: install it from https://ollama.com (or leave out "
                           "--ollama; README-run.txt in the export lists the commands to run it yourself)")
    return command


def best_gguf(manifest: ExportManifest) -> str:
    """The most faithful GGUF type in the export."""
    rank = {name: i for i, name in enumerate(QUALITY_ORDER)}
    return min(manifest.ggufs, key=lambda t: rank.get(t.lower(), len(rank)))


def modelfile_for(manifest: ExportManifest, gguf_type: str) -> Path:
    """The Modelfile that names `gguf_type`'s file: the export's own, or Modelfile.<type> beside it."""
    main = manifest.folder / MODELFILE
    wanted = f"FROM ./{manifest.ggufs[gguf_type]}"
    text = main.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first == wanted:
        return main
    other = manifest.folder / f"{MODELFILE}.{gguf_type}"
    other.write_text(wanted + "\n" + rest, encoding="utf-8")
    return other


def create_ollama_model(manifest: ExportManifest, question: str, gguf_type: str = "",
                        on_progress: Callable[[str], None] | None = None) -> OllamaModel:
    """`ollama create` from the export's Modelfile, then `ollama run` with one question."""
    say = on_progress or (lambda _msg: None)
    command = require_ollama()
    if not manifest.modelfile:
        raise TunewizError(f"{manifest.folder} has no Modelfile (its template has no Ollama equivalent): "
                           "run its GGUF with llama.cpp, as README-run.txt says")
    gguf_type = gguf_type or best_gguf(manifest)
    if gguf_type not in manifest.ggufs:
        raise TunewizError(f"--ollama: this export has no {gguf_type} GGUF (it has "
                           f"{', '.join(manifest.ggufs)})")
    modelfile = modelfile_for(manifest, gguf_type)
    name = manifest.ollama_name
    say(f"Creating the Ollama model {name} from {manifest.ggufs[gguf_type]} (ollama copies it)...")
    _run([command, "create", name, "-f", modelfile.name], manifest.folder, CREATE_TIMEOUT_S, "ollama create")
    say(f"Asking {name}: {question}")
    answer = _run([command, "run", name, question], manifest.folder, RUN_TIMEOUT_S, "ollama run").strip()
    return OllamaModel(name=name, gguf=manifest.ggufs[gguf_type], question=question, answer=answer)


def _run(argv: list[str], folder: Path, timeout: int, what: str) -> str:
    try:
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TunewizError(f"{what} did not finish within {timeout // 60} minutes") from None
    except OSError as exc:
        raise TunewizError(f"{what} could not start: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()[-3:]
        hint = (" (is the Ollama server running? start it with `ollama serve`)"
                if "connect" in " ".join(said).lower() else "")
        raise TunewizError(f"{what} failed (exit {done.returncode}): {' / '.join(said) or 'no output'}{hint}")
    return done.stdout

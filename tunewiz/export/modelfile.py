"""The Ollama Modelfile and the exact commands that run an export.

The TEMPLATE and stop strings come from tunewiz.templates.ollama_template, the
same family the run trained with, and the SYSTEM line is the run's system prompt,
so Ollama renders prompts exactly as training did.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from tunewiz.errors import TunewizError
from tunewiz.templates import OLLAMA_TEMPLATES, ollama_template

MODELFILE = "Modelfile"
RUN_README = "README-run.txt"


def template_stops(family: str, tokenizer: Any | None = None) -> list[str]:
    """Stop strings of a family (for llama.cpp and Ollama); 'model' needs the tokenizer."""
    if family in OLLAMA_TEMPLATES:
        return ollama_template(family)[1]
    from tunewiz.templates import end_of_turn

    return [end_of_turn(family, tokenizer)]


def ollama_name(text: str) -> str:
    """A valid Ollama model name: lower-case letters, digits, '.', '_' and '-'."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name or "tunewiz-model"


def render_modelfile(gguf_name: str, family: str, system: str, eos: str = "</s>") -> str:
    template, stops = ollama_template(family, eos)
    for text, what in ((template, "template"), (system, "system prompt")):
        if '"""' in text:
            raise TunewizError(f"the {what} contains '\"\"\"', which a Modelfile cannot quote; remove it")
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""', ""]
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    if system:
        lines += ["", f'SYSTEM """{system}"""']
    return "\n".join(lines) + "\n"


def modelfile_gguf(folder: Path) -> Path | None:
    """The GGUF file an export's Modelfile names (FROM ./x.gguf), if it exists."""
    try:
        text = (folder / MODELFILE).read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^FROM\s+\./(\S+\.gguf)\s*$", text, re.MULTILINE)
    if match and (folder / match.group(1)).is_file():
        return folder / match.group(1)
    return None


def run_readme(folder: Path, ggufs: list[str], main_gguf: str, model_name: str, system: str,
               has_modelfile: bool, family: str, lora_gguf: str = "", base_model: str = "") -> str:
    """README-run.txt: the exact commands that run this export."""
    q = shlex.quote
    sys_flag = f" -sys {q(system)}" if system else ""
    lines = [f"Run the fine-tuned model exported to {folder}", ""]
    if has_modelfile:
        lines += ["Ollama (the Modelfile carries the training template, stop tokens and system prompt):",
                  f"  cd {q(str(folder))}",
                  f"  ollama create {model_name} -f Modelfile",
                  f"  ollama run {model_name}", ""]
    else:
        lines += [f"Ollama: no Modelfile was written: the '{family}' template (the base model's own) has "
                  "no Ollama equivalent in tunewiz; llama.cpp below uses the template inside the GGUF.", ""]
    lines += ["llama.cpp (the GGUF carries the training chat template; --jinja uses it as is):",
              f"  llama-cli -m {q(str(folder / main_gguf))} --jinja{sys_flag}",
              f"  llama-server -m {q(str(folder / main_gguf))} --jinja --host 127.0.0.1 --port 8080",
              "  then: curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' "
              "-d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'", "",
              "llama-cpp-python:",
              f"  python -m llama_cpp.server --model {q(str(folder / main_gguf))} --host 127.0.0.1 --port 8080",
              "", "transformers (merged 16/32-bit weights, tokenizer and chat template):",
              f"  AutoModelForCausalLM.from_pretrained({str(folder / 'merged')!r})", "",
              "GGUF files in this export: " + ", ".join(ggufs), ""]
    if lora_gguf:
        lines += ["The LoRA adapter alone (apply it to a GGUF of the base model"
                  + (f", {base_model}" if base_model else "") + "):",
                  f"  llama-cli -m BASE.gguf --lora {q(str(folder / lora_gguf))} --jinja{sys_flag}", ""]
    return "\n".join(lines)

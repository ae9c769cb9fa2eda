"""The Ollama Modelfile (the commands that run an export are `tunewiz.exports.run_commands`).

The TEMPLATE and stop strings come from tunewiz.templates.ollama_template, the
same family the run trained with, and the SYSTEM line is the run's system prompt,
so Ollama renders prompts exactly as training did.
"""

from __future__ import annotations

import json
import re

from tunewiz.errors import TunewizError
from tunewiz.templates import ollama_template


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

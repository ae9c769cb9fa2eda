"""Export folders: `exports/<name>/` and its manifest, `export.json`.

The manifest says which file holds which GGUF type, which is the LoRA adapter alone,
whether a Modelfile was written, and what the model is called in Ollama. Everything
that shows how to run an export (README-run.txt, the wizard's Export step, `tunewiz
chat`) reads it here and renders `run_commands`, so they all name the same files: the
model GGUF, never the adapter.
"""

from __future__ import annotations

import dataclasses

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_FILE = "export.json"
MODELFILE = "Modelfile"
RUN_README = "README-run.txt"


@dataclass
class ExportManifest:
    folder: Path
    ggufs: dict[str, str]
    """GGUF type -> file name, in the order the user asked for them (the first is the main one)."""
    lora_gguf: str = ""
    """The LoRA adapter alone as a GGUF (to apply to a GGUF of the base model): not a model."""
    modelfile: bool = False
    ollama_name: str = ""
    system_prompt: str = ""
    template: str = ""
    base_model: str = ""
    run: str = ""
    step: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def main_gguf(self) -> Path | None:
        first = next(iter(self.ggufs.values()), None)
        return self.folder / first if first else None


def read_manifest(folder: Path) -> ExportManifest | None:
    """The manifest of an export folder; None when it has none (not an export, or a broken one)."""
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("gguf"), dict):
        return None
    known = {"gguf", "lora_gguf", "ollama_name", "system_prompt", "template", "base_model", "run", "step"}
    return ExportManifest(folder=folder, ggufs=dict(data["gguf"]), lora_gguf=data.get("lora_gguf") or "",
                          modelfile=(folder / MODELFILE).is_file(), ollama_name=data.get("ollama_name") or "",
                          system_prompt=data.get("system_prompt") or "", template=data.get("template") or "",
                          base_model=data.get("base_model") or "", run=data.get("run") or "",
                          step=int(data.get("step") or 0), extra={k: v for k, v in data.items() if k not in known})


def list_exports(exports_dir: Path) -> list[ExportManifest]:
    """Finished exports, newest first (hidden folders are exports being written)."""
    if not exports_dir.is_dir():
        return []
    manifests = [m for m in map(read_manifest, (p for p in exports_dir.iterdir()
                                                 if p.is_dir() and not p.name.startswith("."))) if m is not None]
    # By when the export finished (its manifest is written last, once), not the folder's time, which
    # any file added to an old export (a note, an editor's swap file) moves.
    return sorted(manifests, key=lambda m: (m.folder / MANIFEST_FILE).stat().st_mtime, reverse=True)


def run_commands(manifest: ExportManifest) -> list[tuple[str, list[str]]]:
    """(what, commands) to run an export: Ollama, llama.cpp, llama-cpp-python, transformers, the adapter."""
    q = shlex.quote
    folder, model = manifest.folder, manifest.main_gguf
    sys_flag = f" -sys {q(manifest.system_prompt)}" if manifest.system_prompt else ""
    sections: list[tuple[str, list[str]]] = []
    if manifest.modelfile:
        sections.append(("Ollama (the Modelfile carries the training template, stop tokens and system prompt)",
                         [f"cd {q(str(folder))}", f"ollama create {manifest.ollama_name} -f {MODELFILE}",
                          f"ollama run {manifest.ollama_name}"]))
    if model is not None:
        sections.append(("llama.cpp (the GGUF carries the training chat template; --jinja uses it as is)",
                         [f"llama-cli -m {q(str(model))} --jinja{sys_flag}",
                          f"llama-server -m {q(str(model))} --jinja --host 127.0.0.1 --port 8080"]))
        sections.append(("llama-cpp-python",
                         [f"python -m llama_cpp.server --model {q(str(model))} --host 127.0.0.1 --port 8080"]))
    sections.append(("transformers (merged 16/32-bit weights, tokenizer and chat template)",
                     [f"AutoModelForCausalLM.from_pretrained({str(folder / 'merged')!r})"]))
    if manifest.lora_gguf:
        sections.append(("The LoRA adapter alone (apply it to a GGUF of the base model"
                         + (f", {manifest.base_model}" if manifest.base_model else "") + ")",
                         [f"llama-cli -m BASE.gguf --lora {q(str(folder / manifest.lora_gguf))} --jinja{sys_flag}"]))
    return sections


def commands_text(manifest: ExportManifest) -> str:
    """run_commands as text: a heading per section, the commands indented."""
    lines = []
    for what, commands in run_commands(manifest):
        lines += [f"{what}:"] + [f"  {command}" for command in commands] + [""]
    return "\n".join(lines).rstrip() + "\n"


def run_readme(manifest: ExportManifest) -> str:
    """README-run.txt: the exact commands that run this export, with absolute paths (the file is read
    from inside the export folder, not from where the export was started)."""
    manifest = dataclasses.replace(manifest, folder=manifest.folder.resolve())
    lines = [f"Run the fine-tuned model exported to {manifest.folder}", ""]
    if not manifest.modelfile:
        lines += [f"Ollama: no Modelfile was written: the '{manifest.template}' template (the base model's own) "
                  "has no Ollama equivalent in tunewiz; llama.cpp below uses the template inside the GGUF.", ""]
    lines.append(commands_text(manifest))
    lines.append("llama-server answers at http://127.0.0.1:8080/v1/chat/completions (OpenAI's chat API).")
    lines += ["", "GGUF files in this export: " + ", ".join(manifest.ggufs.values())
              + (f" (and {manifest.lora_gguf}: the adapter alone)" if manifest.lora_gguf else ""), ""]
    return "\n".join(lines)

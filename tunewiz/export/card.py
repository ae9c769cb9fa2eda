"""The model card every export writes: `README.md` in the Hugging Face model-card format.

A YAML header (base_model, library_name, tags, license when the base model's config names one)
and sections on the data (counts and kinds, never the user's samples), the template, the
hyperparameters, the checkpoint picked and why, its metrics, the files and how to run them.
huggingface_hub's own parser reads it back (tests/export).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tunewiz.checkpoints import CheckpointInfo, CheckpointReport
from tunewiz.dataset import Pair
from tunewiz.exports import ExportManifest, commands_text
from tunewiz.runs import RunSpec

CARD_FILE = "README.md"
HP_SHOWN = ("learning_rate", "lr_scheduler", "epochs", "max_steps", "batch_size", "grad_accum", "warmup_ratio",
            "lora_r", "lora_alpha", "lora_dropout", "target_modules", "seed")


def model_card(name: str, manifest: ExportManifest, spec: RunSpec, report: CheckpointReport,
               checkpoint: CheckpointInfo, trained: list[Pair], base_dir: Path) -> str:
    header = {"base_model": _hub_id(base_dir) or spec.model_name, "library_name": "transformers",
              "tags": ["tunewiz", "lora", "gguf", spec.kind], "pipeline_tag": "text-generation"}
    license_ = _license(base_dir)
    if license_:
        header["license"] = license_
    lines = ["---", *(_yaml(key, value) for key, value in header.items()), "---", "",
             f"# {name}", "",
             f"A LoRA fine-tune of `{spec.model_name}` made with [tunewiz](https://pypi.org/project/tunewiz/), "
             "merged into the base weights and converted to GGUF with llama.cpp's own tools.", "",
             "## Data", ""]
    conversations = sum(1 for p in trained if p.history)
    statuses = Counter(p.status for p in trained)
    lines += [f"- {len(trained)} training samples ({len(trained) - conversations} question/answer pairs, "
              f"{conversations} conversations); {statuses.get('accepted', 0)} reviewed and accepted",
              *([f"- {reworded} of their questions also trained in other words (never asked by the recall check)"]
                if (reworded := (spec.plan or {}).get("train_rewordings", 0)) else []),
              f"- {len(spec.validation_ids)} held out for validation",
              f"- what they teach: **{spec.kind}** ("
              + ("knowledge to recall, judged on reworded questions" if spec.kind == "facts"
                 else "a skill, judged on held-out examples") + ")",
              f"- sources: {_sources(trained)}", "",
              "## Training", "",
              f"- chat template: `{spec.family}` (the GGUF and the Modelfile carry the same one)",
              f"- system prompt: {json.dumps(spec.system_prompt) if spec.system_prompt else 'none'}",
              f"- max sequence length: {spec.max_seq_len} tokens", ""]
    lines += ["| setting | value |", "|---|---|"]
    lines += [f"| {key} | {spec.hyperparameters[key]} |" for key in HP_SHOWN if key in spec.hyperparameters]
    lines += ["", "## Checkpoint", "",
              f"Step {checkpoint.step} of run `{report.run.id}`"
              + (f": {report.reason}" if report.reason and checkpoint.best else " (picked by hand)") + ".", ""]
    metrics = [("validation loss", f"{checkpoint.val_loss:.4f}" if checkpoint.val_loss is not None else None),
               ("trained questions recalled", str(checkpoint.trained) if checkpoint.trained else None),
               ("reworded questions recalled", str(checkpoint.reworded) if checkpoint.reworded else None),
               ("everyday prompts broken", f"{checkpoint.drift.broken}/{checkpoint.drift.total}"
                if checkpoint.drift else None)]
    if report.base is not None and report.base.reworded is not None:
        metrics.append(("reworded recalled by the base model", str(report.base.reworded)))
    lines += [f"- {what}: {value}" for what, value in metrics if value is not None]
    lines += ["", "## Files", ""]
    lines += [f"- `{file}`: GGUF, {kind}" for kind, file in manifest.ggufs.items()]
    if manifest.lora_gguf:
        lines.append(f"- `{manifest.lora_gguf}`: the LoRA adapter alone, as a GGUF (apply it to the base model)")
    lines += ["- `merged/`: the merged 16/32-bit weights, tokenizer and chat template (transformers)"]
    if manifest.modelfile:
        lines.append("- `Modelfile`: for `ollama create`")
    lines += ["", "## Run it", "", "```sh", commands_text(manifest).rstrip(), "```", ""]
    return "\n".join(lines)


def _yaml(key: str, value: Any) -> str:
    if isinstance(value, list):
        return f"{key}:\n" + "\n".join(f"- {json.dumps(item)}" for item in value)
    return f"{key}: {json.dumps(value)}"


def _sources(pairs: list[Pair]) -> str:
    kinds = Counter(_source_kind(p.source) for p in pairs)
    return ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "none recorded"


def _source_kind(source: str) -> str:
    if not source:
        return "added by hand"
    name = source.split(":")[0].split("#")[0]
    suffix = Path(name).suffix.lower()
    return {".csv": "from CSV", ".tsv": "from CSV", ".jsonl": "from JSONL", ".json": "from JSON",
            ".md": "generated from documents", ".txt": "generated from documents", ".pdf": "generated from documents",
            ".html": "generated from documents"}.get(suffix, "generated")


def _hub_id(base_dir: Path) -> str:
    """The base model's hub id when its config records one (a folder downloaded from the hub)."""
    try:
        config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    name = config.get("_name_or_path") or ""
    return name if isinstance(name, str) and name.count("/") == 1 and not name.startswith(("/", ".")) else ""


def _license(base_dir: Path) -> str:
    for name in ("config.json", "tokenizer_config.json"):
        try:
            value = json.loads((base_dir / name).read_text(encoding="utf-8")).get("license")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value:
            return value
    return ""

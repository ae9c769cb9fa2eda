"""Export the picked checkpoint: merged safetensors, GGUF files, Modelfile, smoke test.

    exports/<name>/merged/            base + LoRA merged (16/32-bit), tokenizer, chat template,
                                      generation config
    exports/<name>/<name>-<type>.gguf one per export.gguf_types entry (llama.cpp's converter and quantizer)
    exports/<name>/Modelfile          Ollama: training template, stop tokens, system prompt
    exports/<name>/README-run.txt     the exact ollama / llama.cpp commands (tunewiz.exports)
    exports/<name>/README.md          the model card (Hugging Face format: tunewiz.export.card)
    exports/<name>/smoke-test.json    each GGUF's answers against the merged model's (+ smoke-test.txt)
    exports/<name>/export.json        what was exported from where
    exports/<name>/export.log         the converter's and quantizer's output
    exports/<name>/Modelfile.<type>   only when `ollama create` was asked for another GGUF than the main one

Everything is checked first (checkpoint, base model, types, converter, disk space),
then written into a hidden staging folder beside the export, which is renamed into
place only when complete. An existing export is replaced only with force=True, and
only after the new one is complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tunewiz.checkpoints import CheckpointInfo, picked_checkpoint, read_run_config
from tunewiz.errors import TunewizError
from tunewiz.export import disk, gguf
from tunewiz.export.modelfile import ollama_name, render_modelfile
from tunewiz.exports import MANIFEST_FILE, MODELFILE, RUN_README, read_manifest, run_readme
from tunewiz.project import Project, atomic_write_text
from tunewiz.runs import checkpoint_damage
from tunewiz.templates import OLLAMA_TEMPLATES, template_stops

SIXTEEN_BIT = ("f32", "f16", "bf16")
BYTES_PER_DTYPE = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass
class ExportResult:
    folder: Path
    run_id: str
    checkpoint: CheckpointInfo
    ggufs: dict[str, Path]
    """GGUF type -> file."""
    modelfile: Path | None
    smoke: dict[str, Any] | None
    lora_gguf: Path | None = None
    """The LoRA adapter alone, as a GGUF adapter for llama.cpp's --lora."""
    warnings: list[str] = field(default_factory=list)
    ollama: Any = None
    """The Ollama model created (tunewiz.export.ollama.OllamaModel) when asked for."""


def export_name(project: Project, name: str = "") -> str:
    name = name or project.config.export.name or project.name
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise TunewizError(f"export.name: {name!r} is not a usable folder name (no slashes, no leading dot)")
    return name


@dataclass
class ExportPlan:
    """Everything an export will do, checked before anything is written (plan_export)."""
    project: Project
    report: Any
    """The checkpoint report of the run (tunewiz.checkpoints)."""
    checkpoint: CheckpointInfo
    cfg: Any
    """The run's contract (RunSpec, read through read_run_config)."""
    dtype: str
    """The base model's weight dtype, which the merge keeps."""
    ftypes: list[str]
    name: str
    folder: Path
    ollama: str | None
    params: int
    merge_mb: float
    warnings: list[str] = field(default_factory=list)

    @property
    def source_type(self) -> str | None:
        """The 16/32-bit GGUF type among those asked for, which the quantized types are made from."""
        return next((t for t in self.ftypes if t in SIXTEEN_BIT), None)


def export_model(project: Project, *, on_progress: Callable[[str], None] | None = None, force: bool = False,
                 types: list[str] | None = None, name: str = "", smoke: bool = True,
                 smoke_questions: int = 3, ollama: str | None = None) -> ExportResult:
    """Export the checkpoint picked in [checkpoint] as [export] says (types/name override it).

    ollama: create the Ollama model from this GGUF type ("": the best quality exported) and ask it
    one held-out question; None: as [export] ollama_create says."""
    say = on_progress or (lambda _msg: None)
    plan = plan_export(project, force=force, types=types, name=name, ollama=ollama)
    result = write_export(plan, say, smoke, smoke_questions)
    if plan.ollama is not None:
        from tunewiz.export.ollama import create_ollama_model
        from tunewiz.samples import held_out_pairs

        pairs, _origin = held_out_pairs(project, plan.cfg, 1)
        question = pairs[0].question if pairs else "Hello! What can you help me with?"
        result.ollama = create_ollama_model(read_manifest(plan.folder), question, plan.ollama, on_progress=say)
    return result


def plan_export(project: Project, *, force: bool = False, types: list[str] | None = None, name: str = "",
                ollama: str | None = None) -> ExportPlan:
    """Check everything an export needs (checkpoint, base model, types, converter, Ollama, disk space,
    memory for the merge) and say what it will write; TunewizError naming the first problem."""
    report, checkpoint = picked_checkpoint(project)
    damage = checkpoint_damage(checkpoint.path)
    if damage:
        raise TunewizError(f"checkpoint {checkpoint.step} of run {report.run.id} cannot be exported: {damage}. "
                           "Pick another with `tunewiz pick`, or resume the run to write new checkpoints")
    cfg = read_run_config(report.run)
    from tunewiz.basemodel import check_base, count_parameters

    dtype = check_base(cfg.base_path, checkpoint.path, report.run.config_path)
    ftypes = gguf.check_types(types if types is not None else project.config.export.gguf_types)
    name = export_name(project, name)
    folder = project.exports_dir / name
    if folder.exists() and not force:
        raise TunewizError(f"{folder} already exists; export under another name (export.name) or "
                           "replace it with --force (the new export is written completely first)")
    gguf.check_converter(gguf.model_architecture(cfg.base_path))
    if ollama is None and project.config.export.ollama_create:
        ollama = ""
    if ollama is not None:
        _check_ollama(ollama, ftypes, cfg.family)
    params = count_parameters(str(cfg.base_path)) or 0
    # The merge loads the 16/32-bit base into CPU memory (a QLoRA run's too: never its 4-bit weights).
    plan = ExportPlan(project, report, checkpoint, cfg, dtype, ftypes, name, folder, ollama, params,
                      merge_mb=params * BYTES_PER_DTYPE[dtype] / 2**20 * 1.1)
    if cfg.family not in OLLAMA_TEMPLATES:
        plan.warnings.append(f"no Modelfile: the run trained with the base model's own template ('{cfg.family}'), "
                             "which has no Ollama equivalent; llama.cpp uses the template inside the GGUF")
    _check_room(plan)
    return plan


def _check_room(plan: ExportPlan) -> None:
    """Disk space for every file the export writes, and memory for the merge."""
    params, name, ftypes = plan.params, plan.name, plan.ftypes
    needs = {"merged model": params * BYTES_PER_DTYPE[plan.dtype]}
    needs |= {f"{name}-{t}.gguf": disk.file_size_estimate(params, t) for t in ftypes}
    adapter = plan.checkpoint.path / "adapter_model.safetensors"
    needs[f"{name}-lora-f16.gguf"] = (adapter.stat().st_size // 2 if adapter.exists() else 0) + 2**20
    if plan.source_type is None and any(t not in gguf.CONVERTER_TYPES for t in ftypes):
        needs["16-bit GGUF to quantize from (deleted after)"] = disk.file_size_estimate(params, "f16")
    exports_dir = plan.project.exports_dir
    exports_dir.mkdir(parents=True, exist_ok=True)
    disk.check_free_space(exports_dir, needs)
    from tunewiz.hardware import detect

    available_mb = detect().ram_available_mb
    if plan.merge_mb > available_mb:
        raise TunewizError(f"merging needs about {plan.merge_mb / 1024:,.1f} GB of memory (the {plan.dtype} base "
                           f"model and the adapter) but {available_mb / 1024:,.1f} GB is available; close other "
                           "programs, or export on a machine with more memory")


def write_export(plan: ExportPlan, say: Callable[[str], None], smoke: bool = True,
                 smoke_questions: int = 3) -> ExportResult:
    """Write a planned export into a staging folder, then rename it into place (replacing an older one
    only once the new one is complete); nothing is left behind when any part fails."""
    exports_dir, name, folder = plan.project.exports_dir, plan.name, plan.folder
    for stale in exports_dir.glob(f".{name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a crashed export (we hold the project lock)
    staging = exports_dir / f".{name}.partial-{os.getpid()}"
    cfg, checkpoint = plan.cfg, plan.checkpoint
    staging.mkdir()
    try:
        # The base folder is read, never written: the merged weights go to the export's own folder.
        say(f"Merging checkpoint {checkpoint.step} of run {plan.report.run.id} with the base model {cfg.base_path} "
            f"({plan.dtype}, about {plan.merge_mb / 1024:,.1f} GB of memory)...")
        from tunewiz.export.merge import merge_checkpoint

        merged = merge_checkpoint(cfg.base_path, checkpoint.path, cfg.family, staging / "merged", plan.dtype)
        log = staging / "export.log"
        ggufs = _write_ggufs(plan, merged, staging, log, say)
        say("Converting the LoRA adapter alone to a GGUF adapter (llama.cpp's converter)...")
        lora = gguf.convert_lora(checkpoint.path, cfg.base_path, staging / f"{name}-lora-f16.gguf", log)
        modelfile, smoke_report = _write_companions(plan, staging, merged, ggufs, lora, say, smoke,
                                                    smoke_questions)
        _make_readable(staging)
        _move_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"Exported to {folder}")
    rebase = lambda p: folder / p.relative_to(staging)  # noqa: E731
    return ExportResult(folder=folder, run_id=plan.report.run.id, checkpoint=checkpoint,
                        ggufs={t: rebase(p) for t, p in ggufs.items()}, lora_gguf=rebase(lora),
                        modelfile=rebase(modelfile) if modelfile else None, smoke=smoke_report,
                        warnings=plan.warnings)


def _write_ggufs(plan: ExportPlan, merged: Path, staging: Path, log: Path,
                 say: Callable[[str], None]) -> dict[str, Path]:
    """Each asked GGUF type from the merged folder: converted by llama.cpp's converter, or quantized
    by its quantizer from the 16-bit one (a temporary one when none was asked for)."""
    ftypes, name = plan.ftypes, plan.name
    ggufs: dict[str, Path] = {}
    for ftype in [t for t in ftypes if t in gguf.CONVERTER_TYPES]:
        say(f"Converting to {ftype} GGUF (llama.cpp's converter)...")
        ggufs[ftype] = gguf.convert(merged, staging / f"{name}-{ftype}.gguf", ftype, log)
    quantized = [t for t in ftypes if t not in gguf.CONVERTER_TYPES]
    if quantized:
        source_type = plan.source_type
        if source_type is not None:
            source = ggufs[source_type]
        else:
            temp_type = "bf16" if plan.dtype == "bfloat16" else "f16"
            say(f"Converting to a temporary {temp_type} GGUF to quantize from...")
            source = gguf.convert(merged, staging / f".source-{temp_type}.gguf", temp_type, log)
        for ftype in quantized:
            say(f"Quantizing to {ftype} (llama.cpp's quantizer)...")
            ggufs[ftype] = gguf.quantize(source, staging / f"{name}-{ftype}.gguf", ftype, log)
        if source_type is None:
            source.unlink()
    return {t: ggufs[t] for t in ftypes}  # in the order the user listed them


def _write_companions(plan: ExportPlan, staging: Path, merged: Path, ggufs: dict[str, Path], lora: Path,
                      say: Callable[[str], None], smoke: bool, smoke_questions: int):
    """The Modelfile, the smoke test, export.json, README-run.txt and the model card: (Modelfile or
    None, smoke report or None)."""
    from transformers import AutoTokenizer

    project, cfg, report, checkpoint = plan.project, plan.cfg, plan.report, plan.checkpoint
    tokenizer = AutoTokenizer.from_pretrained(merged)  # its EOS ends llama2/alpaca turns in the Modelfile
    stops = template_stops(cfg.family, tokenizer)
    model_name = ollama_name(project.config.export.ollama_name or project.name)
    main = ggufs[plan.ftypes[0]]
    modelfile = None
    if cfg.family in OLLAMA_TEMPLATES:
        modelfile = staging / MODELFILE
        atomic_write_text(modelfile, render_modelfile(main.name, cfg.family, cfg.system_prompt,
                                                      tokenizer.eos_token or "</s>"))
    smoke_report = None
    if smoke:
        from tunewiz.export.smoke import smoke_test
        from tunewiz.samples import held_out_pairs

        pairs, origin = held_out_pairs(project, cfg, smoke_questions)
        if pairs:
            smoke_report = smoke_test(staging, merged, ggufs, pairs, origin, cfg.family,
                                      cfg.system_prompt, stops, on_progress=say)
        else:
            plan.warnings.append("no smoke test: the project has no pairs to ask")
    atomic_write_text(staging / MANIFEST_FILE, json.dumps({
        "run": report.run.id, "step": checkpoint.step, "val_loss": checkpoint.val_loss,
        "base_dir": cfg.base_dir, "base_model": cfg.model_name, "template": cfg.family,
        "system_prompt": cfg.system_prompt, "gguf": {t: p.name for t, p in ggufs.items()},
        "lora_gguf": lora.name,
        "dtype": plan.dtype, "ollama_name": model_name,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }, indent=2) + "\n")
    # The README is rendered from the manifest, as the wizard's Export step is: the same commands.
    manifest = read_manifest(staging)
    manifest.folder = plan.folder
    atomic_write_text(staging / RUN_README, run_readme(manifest))
    from tunewiz.dataset import PairStore
    from tunewiz.export.card import CARD_FILE, model_card

    store = PairStore(project.pairs_path)
    trained = [store.get(i) for i in cfg.train_ids if i in store]
    atomic_write_text(staging / CARD_FILE, model_card(plan.name, manifest, cfg, report, checkpoint, trained,
                                                      cfg.base_path))
    return modelfile, smoke_report


def _check_ollama(gguf_type: str, ftypes: list[str], family: str) -> None:
    """Before anything is written: `ollama` is there, the type is exported, the template has a Modelfile."""
    from tunewiz.export.ollama import require_ollama

    require_ollama()
    if gguf_type and gguf_type not in ftypes:
        raise TunewizError(f"--ollama {gguf_type}: not among the GGUF types of this export ({', '.join(ftypes)})")
    if family not in OLLAMA_TEMPLATES:
        raise TunewizError(f"--ollama: the run's template ('{family}') has no Ollama equivalent, so no Modelfile "
                           "can be written; train with a named template ([template] name) to use Ollama")


def _make_readable(folder: Path) -> None:
    """Give the small files written through temp files (mode 0600) the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def _move_into_place(staging: Path, folder: Path) -> None:
    """Rename the finished staging folder to its final name; an old export goes only after."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, folder)

"""`tunewiz push`: an export to a Hugging Face Hub repository, through huggingface_hub's own client.

What goes up (staged as hard links in `exports/.push-<name>/`, so nothing is copied):
- always: the LoRA adapter of the exported checkpoint (adapter_model.safetensors,
  adapter_config.json), the tokenizer and chat template, and the model card (README.md);
- merged=True: the merged 16/32-bit model under `merged/`;
- gguf=True: the GGUF files and the Modelfile at the top (where Ollama's `hf.co/...` looks).

The repository is created private unless asked otherwise. The token is huggingface_hub's:
$HF_TOKEN or the one `hf auth login` saved; tunewiz never stores it. The endpoint is
$HF_ENDPOINT's (the Hub by default). huggingface_hub uploads large files through Xet when
hf_xet is installed (an interrupted push resumes when run again) or Git LFS (files the Hub
already has are not sent again).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tunewiz.errors import TunewizError
from tunewiz.export.card import CARD_FILE
from tunewiz.exports import MODELFILE, ExportManifest, list_exports, read_manifest
from tunewiz.project import Project

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json")


@dataclass
class PushResult:
    repo_id: str
    url: str
    files: list[str]
    private: bool


def find_export(project: Project, name: str = "") -> ExportManifest:
    """The export to push: `name`'s, else the newest."""
    if name:
        manifest = read_manifest(project.exports_dir / name)
        if manifest is None:
            raise TunewizError(f"{project.exports_dir / name} is not a finished export (run `tunewiz export` first)")
        return manifest
    exports = list_exports(project.exports_dir)
    if not exports:
        raise TunewizError(f"nothing exported in {project.exports_dir} yet: run `tunewiz export` first")
    return exports[0]


def push_files(project: Project, manifest: ExportManifest, merged: bool, gguf: bool) -> dict[str, Path]:
    """Path in the repository -> file on disk."""
    checkpoint = project.runs_dir / manifest.run / "checkpoints" / f"checkpoint-{manifest.step}"
    files: dict[str, Path] = {}
    for name in ADAPTER_FILES:
        if not (checkpoint / name).is_file():
            raise TunewizError(f"{checkpoint / name} is missing: the adapter of the exported checkpoint "
                               "(run `tunewiz export` again from an intact checkpoint)")
        files[name] = checkpoint / name
    merged_dir = manifest.folder / "merged"
    files |= {name: merged_dir / name for name in TOKENIZER_FILES if (merged_dir / name).is_file()}
    card = manifest.folder / CARD_FILE
    if not card.is_file():
        raise TunewizError(f"{card} is missing (exports before model cards have none): export again")
    files[CARD_FILE] = card
    if merged:
        files |= {f"merged/{p.relative_to(merged_dir)}": p for p in sorted(merged_dir.rglob("*")) if p.is_file()}
    if gguf:
        names = list(manifest.ggufs.values()) + ([manifest.lora_gguf] if manifest.lora_gguf else [])
        files |= {name: manifest.folder / name for name in names}
        if manifest.modelfile:
            files[MODELFILE] = manifest.folder / MODELFILE
    return files


def stage(files: dict[str, Path], folder: Path) -> None:
    """The files laid out as in the repository, as hard links (a copy across file systems)."""
    if folder.exists():
        shutil.rmtree(folder)
    for target, source in files.items():
        path = folder / target
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, path)
        except OSError:
            shutil.copy2(source, path)


def push_export(project: Project, repo_id: str, *, export: str = "", merged: bool = False, gguf: bool = False,
                private: bool = True, on_progress: Callable[[str], None] | None = None) -> PushResult:
    say = on_progress or (lambda _msg: None)
    from huggingface_hub import HfApi, get_token  # deferred: the CLI starts without it
    from huggingface_hub.errors import HfHubHTTPError

    token = get_token()
    if not token:
        raise TunewizError("no Hugging Face token: set HF_TOKEN (a write token from "
                           "https://huggingface.co/settings/tokens) or run `hf auth login` once")
    manifest = find_export(project, export)
    files = push_files(project, manifest, merged, gguf)
    api = HfApi(token=token)
    try:
        if "/" not in repo_id:
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        say(f"Creating {repo_id} ({'private' if private else 'public'}) if it does not exist ...")
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        folder = project.exports_dir / f".push-{manifest.folder.name}"
        stage(files, folder)
        size = sum(p.stat().st_size for p in files.values())
        say(f"Uploading {len(files)} files ({size / 2**20:,.1f} MiB) from {manifest.folder} ...")
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                          commit_message=f"tunewiz: checkpoint {manifest.step} of run {manifest.run}")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        hint = {401: " (the token is not valid: `hf auth login` again)",
                403: " (the token cannot write there: a write token, or a namespace you own)"}.get(status, "")
        raise TunewizError(f"the Hub refused the push of {repo_id}: {exc}{hint}") from None
    except OSError as exc:  # no network, DNS, a refused connection (httpx errors are OSErrors or wrap them)
        raise TunewizError(f"cannot reach {os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}: {exc}") from None
    except Exception as exc:
        if type(exc).__module__.startswith("httpx"):
            raise TunewizError(f"cannot reach {os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}: "
                               f"{exc}") from None
        raise
    shutil.rmtree(folder, ignore_errors=True)
    return PushResult(repo_id=repo_id, url=str(url), files=sorted(files), private=private)
